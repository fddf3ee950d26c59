//! What the deployment docs (docs/operations.md) ships, checked: the Grafana
//! dashboard, the systemd unit and the backup/restore procedure.

use crate::common::fs::copy_dir;
use crate::common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Every `expr` of the dashboard's panels.
fn dashboard_queries() -> Vec<String> {
    let text = std::fs::read_to_string(repo("deploy/grafana-dashboard.json")).unwrap();
    let dash: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON: {e}"));
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(e) = target["expr"].as_str() {
                out.push(e.to_string());
            }
        }
    }
    out
}

/// The `ipgate_*` names a query reads.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("ipgate_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        out.push(name);
    }
    out
}

#[test]
fn the_grafana_dashboard_reads_only_metrics_ipgate_exports_and_its_queries_parse() {
    let queries = dashboard_queries();
    assert!(queries.len() >= 10, "{queries:?}");
    let up = Upstream::start();
    let gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &["127.0.0.1"]);
    gate.get("127.0.0.1", "/sms/x", &[("X-Account-Id", "acme")]);
    gate.get("127.0.0.2", "/sms/x", &[("X-Account-Id", "acme")]);
    let exported = gate.metrics_text();
    let mut used = 0;
    for q in &queries {
        for name in metric_names(q) {
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            assert!(
                exported.contains(&format!("# TYPE {base} ")),
                "the dashboard reads {name}, which ipgate does not export:\n{q}"
            );
            used += 1;
        }
    }
    assert!(used >= queries.len(), "every query reads an ipgate metric");

    // PromQL syntax: promtool parses each query as a recording rule, with
    // Grafana's variables filled in.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, q) in queries.iter().enumerate() {
        let q = q
            .replace("$__rate_interval", "5m")
            .replace("$instance", ".*")
            .replace('\'', "''");
        rules.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: '{q}'\n"
        ));
    }
    let file = gate.dir.path().join("dashboard-rules.yml");
    std::fs::write(&file, rules).unwrap();
    let rules_path = file.to_string_lossy();
    if let Some(out) = promtool(&["check", "rules", &rules_path], "") {
        assert!(
            out.status.success(),
            "promtool refused a dashboard query:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_systemd_units_verify_without_warnings() {
    for (file, role) in [
        ("ipgate.service", "serve"),
        ("ipgate-control.service", "control"),
        ("ipgate-proxy.service", "proxy"),
    ] {
        let unit = std::fs::read_to_string(repo(&format!("deploy/{file}"))).unwrap();
        assert!(
            unit.contains(&format!(
                "ExecStart=/usr/local/bin/ipgate {role} --config /etc/ipgate/ipgate.toml"
            )),
            "{file}"
        );
        // systemd-analyze checks that ExecStart's binary exists: point it at ours.
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join(file);
        std::fs::write(&copy, unit.replace("/usr/local/bin/ipgate", bin())).unwrap();
        match Command::new("systemd-analyze")
            .arg("verify")
            .arg(&copy)
            .output()
        {
            Ok(out) => {
                let said = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                assert!(out.status.success(), "{file}: {said}");
                assert!(
                    !said.contains(file),
                    "systemd-analyze warns about {file}:\n{said}"
                );
            }
            Err(e) => {
                eprintln!("systemd-analyze not installed ({e}); skipped the unit check");
                return;
            }
        }
    }
}

#[test]
fn a_store_copied_after_a_clean_stop_restores_everything() {
    let up = Upstream::start();
    let mut gate = Server::start(&up, ServerOpts::default());
    gate.account("acme", "enforce", &["127.0.0.1", "2001:db8::/64"]);
    let (s, _) = gate.admin(
        "POST",
        "/admin/v1/blocklist",
        Some(serde_json::json!({"cidr": "198.51.100.0/24"})),
    );
    assert_eq!(s, 201);
    let (_, before) = gate.admin("GET", "/admin/v1/security-log/verify", None);
    assert_eq!(before["ok"], true, "{before}");

    // The documented procedure (docs/operations.md): stop, copy the store directory, start.
    let status = gate.stop();
    assert!(status.success(), "SIGTERM is a clean exit: {status}");
    let store = gate.dir.path().join("store");
    let backup = gate.dir.path().join("backup");
    copy_dir(&store, &backup);
    gate.restart();
    gate.account("later", "enforce", &["127.0.0.3"]);

    // Disaster: the store is gone. Restore the copy.
    gate.stop();
    std::fs::remove_dir_all(&store).unwrap();
    copy_dir(&backup, &store);
    gate.restart();

    let (_, after) = gate.admin("GET", "/admin/v1/security-log/verify", None);
    assert_eq!(after["ok"], true, "{after}");
    assert_eq!(
        after["head"], before["head"],
        "the log is the one backed up"
    );
    assert_eq!(after["records"], before["records"]);
    let auth = [("X-Account-Id", "acme")];
    assert_eq!(gate.get("127.0.0.1", "/sms/x", &auth).0, 200);
    assert_eq!(gate.get("127.0.0.2", "/sms/x", &auth).0, 403);
    let (s, _) = gate.admin("GET", "/admin/v1/accounts/later", None);
    assert_eq!(s, 404, "changes after the backup are not in it");
    let (_, blocked) = gate.admin("GET", "/admin/v1/blocklist", None);
    assert_eq!(blocked[0]["cidr"], "198.51.100.0/24", "{blocked}");
}
