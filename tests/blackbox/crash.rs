//! Crash consistency: a scripted workload (submit, approve, reject, cancel,
//! admin add and remove, mail) runs against the real binary while it is
//! killed with SIGKILL at random moments; after each restart the store, the
//! live proxy table, the security log, the outbox and the mail received
//! must agree with everything the workload was told had happened.
//!
//! `IPGATE_CRASH_CYCLES` (default 8, CI's short run; 200 for the full run)
//! and `IPGATE_CRASH_SEED` (printed at the start, to replay a run).

use crate::common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const EMAILS: [&str; 2] = ["ops@acme.test", "cto@acme.test"];

/// What the workload knows of one thing after its call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    /// The server said it happened.
    Yes,
    /// The server said it did not, or it never started.
    No,
    /// The call died with the process: either is allowed, once.
    Maybe,
}

#[derive(Debug, Default)]
struct Model {
    /// Admin-managed addresses: live or not.
    admin_ips: BTreeMap<String, Known>,
    /// Request id -> its status as far as the workload was told
    /// (`None`: the submit was answered but nothing decided since).
    requests: BTreeMap<String, Option<&'static str>>,
    /// Request id -> its one IP.
    request_ip: BTreeMap<String, String>,
    /// A submit whose answer was lost, and the IP it asked for.
    maybe_submit: Option<String>,
    /// A decision or cancel whose answer was lost: id and the status it asked for.
    maybe_end: Option<(String, &'static str)>,
    next_ip: u32,
    ops: usize,
    kills: usize,
    /// Calls whose answer the kill took away.
    lost_answers: usize,
}

/// Calls that may fail because the process is being killed.
struct Client {
    http: reqwest::blocking::Client,
    portal: String,
    admin: String,
    token: String,
}

impl Client {
    fn new(gate: &Server, token: &str) -> Client {
        Client {
            http: reqwest::blocking::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            portal: format!("http://{}", gate.portal),
            admin: format!("http://{}", gate.admin),
            token: token.to_string(),
        }
    }

    fn send(&self, req: reqwest::blocking::RequestBuilder) -> Option<(u16, String)> {
        let resp = req.send().ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.text().ok()?))
    }

    fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Option<(u16, String)> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).ok()?;
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.admin))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req)
    }

    fn api(&self, method: &str, path: &str, body: Option<Value>) -> Option<(u16, String)> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).ok()?;
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.portal))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req)
    }

    /// Opens a link page, then posts its form with `decision`.
    fn decide(&self, link: &str, decision: &str) -> Option<(u16, String)> {
        let (_, page) = self.send(self.http.get(link))?;
        let csrf = crate::common::browser::find_csrf(&page)?;
        self.send(self.http.post(link).form(&[
            ("csrf", csrf.as_str()),
            ("confirm", "yes"),
            ("decision", decision),
        ]))
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// This request's review links that have arrived.
fn links_for(gate: &Server, id: &str) -> Vec<String> {
    let subject = format!("Confirm IP whitelist request {id} for Acme");
    gate.mail
        .mails()
        .into_iter()
        .filter(|m| m.subject == subject)
        .filter_map(|m| m.links().into_iter().find(|l| l.contains("/confirm/")))
        .collect()
}

/// Runs operations until one fails (the process is gone) or `budget` passes.
fn workload(gate: &Server, client: &Client, model: &mut Model, rng: &mut StdRng, budget: Duration) {
    let end = Instant::now() + budget;
    while Instant::now() < end {
        model.ops += 1;
        let pending = model
            .requests
            .iter()
            .find(|(_, s)| s.is_none())
            .map(|(id, _)| id.clone());
        let roll = rng.gen_range(0..100);
        let ok = match (&pending, roll) {
            (_, 0..=24) => admin_op(client, model, rng),
            (None, _) if model.maybe_submit.is_none() => submit(client, model),
            (None, _) => true,
            (Some(id), 25..=39) => end_op(client, model, id, "cancelled"),
            (Some(id), _) => {
                let links = links_for(gate, id);
                if links.is_empty() {
                    std::thread::sleep(Duration::from_millis(20));
                    true
                } else {
                    let link = &links[rng.gen_range(0..links.len())];
                    let (decision, status) = if roll < 80 {
                        ("approve", "approved")
                    } else {
                        ("reject", "rejected")
                    };
                    decide(client, model, id, link, decision, status)
                }
            }
        };
        if !ok {
            model.lost_answers += 1;
            return;
        }
    }
}

fn admin_op(client: &Client, model: &mut Model, rng: &mut StdRng) -> bool {
    let ip = format!("127.0.1.{}", rng.gen_range(1..=30));
    let live = model.admin_ips.get(&ip).copied().unwrap_or(Known::No);
    if live == Known::Maybe {
        return true;
    }
    if live == Known::No {
        model.admin_ips.insert(ip.clone(), Known::Maybe);
        let body = json!({"cidr": ip, "remark": "crash test"});
        return match client.admin("POST", "/admin/v1/accounts/acme/whitelist", Some(body)) {
            Some((201, _)) => {
                model.admin_ips.insert(ip, Known::Yes);
                true
            }
            Some((s, b)) => panic!("admin add {ip}: {s} {b}"),
            None => false,
        };
    }
    let (s, list) = match client.admin("GET", "/admin/v1/accounts/acme/whitelist", None) {
        Some(x) => x,
        None => return false,
    };
    assert_eq!(s, 200, "{list}");
    let cidr = format!("{ip}/32");
    let Some(id) = json(&list)
        .as_array()
        .and_then(|a| a.iter().find(|e| e["cidr"] == cidr.as_str()).cloned())
        .and_then(|e| e["id"].as_str().map(str::to_string))
    else {
        panic!("{ip} was added (201) but is not listed: {list}");
    };
    model.admin_ips.insert(ip.clone(), Known::Maybe);
    match client.admin(
        "DELETE",
        &format!("/admin/v1/accounts/acme/whitelist/{id}"),
        None,
    ) {
        Some((200 | 204, _)) => {
            model.admin_ips.insert(ip, Known::No);
            true
        }
        Some((s, b)) => panic!("admin remove {ip}: {s} {b}"),
        None => false,
    }
}

fn submit(client: &Client, model: &mut Model) -> bool {
    model.next_ip += 1;
    let ip = format!("127.2.{}.{}", model.next_ip / 250, model.next_ip % 250 + 1);
    model.maybe_submit = Some(ip.clone());
    let body = json!({"ips": [ip], "remark": "crash test"});
    match client.api("POST", "/api/v1/whitelist/requests", Some(body)) {
        Some((202, b)) => {
            let id = json(&b)["id"].as_str().unwrap_or_default().to_string();
            model.maybe_submit = None;
            model.requests.insert(id.clone(), None);
            model.request_ip.insert(id, ip);
            true
        }
        Some((s, b)) => panic!("submit {ip}: {s} {b}"),
        None => false,
    }
}

fn end_op(client: &Client, model: &mut Model, id: &str, status: &'static str) -> bool {
    model.maybe_end = Some((id.to_string(), status));
    match client.api(
        "POST",
        &format!("/api/v1/whitelist/requests/{id}/cancel"),
        None,
    ) {
        Some((200, _)) => {
            model.maybe_end = None;
            model.requests.insert(id.to_string(), Some(status));
            true
        }
        Some((s, b)) => panic!("cancel {id}: {s} {b}"),
        None => false,
    }
}

fn decide(
    client: &Client,
    model: &mut Model,
    id: &str,
    link: &str,
    decision: &str,
    status: &'static str,
) -> bool {
    model.maybe_end = Some((id.to_string(), status));
    match client.decide(link, decision) {
        Some((200, _)) => {
            model.maybe_end = None;
            model.requests.insert(id.to_string(), Some(status));
            true
        }
        // Link pages are rate-limited per client and account: nothing happened.
        Some((429, _)) => {
            model.maybe_end = None;
            true
        }
        Some((s, b)) => panic!("{decision} {id}: {s} {b}"),
        None => false,
    }
}

/// After a restart: everything the workload was told holds, everything it
/// was not told about is either fully there or not there at all.
fn check(gate: &Server, client: &Client, model: &mut Model) {
    let (_, v) = gate.admin("GET", "/admin/v1/security-log/verify", None);
    assert_eq!(v["ok"], true, "security log after a kill: {v}");

    // Requests in the store against the model.
    let (s, list) = client
        .api("GET", "/api/v1/whitelist/requests", None)
        .unwrap_or_else(|| panic!("the restarted gate does not answer"));
    assert_eq!(s, 200, "{list}");
    let stored: BTreeMap<String, (String, String)> = json(&list)
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    (
                        r["id"].as_str().unwrap_or_default().to_string(),
                        (
                            r["status"].as_str().unwrap_or_default().to_string(),
                            r["ips"][0].as_str().unwrap_or_default().to_string(),
                        ),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    for (id, want) in &model.requests {
        let Some((status, _)) = stored.get(id) else {
            panic!("request {id} was accepted (202) and is gone after a kill");
        };
        match (want, &model.maybe_end) {
            (Some(w), _) => assert_eq!(status, w, "request {id}"),
            (None, Some((mid, ms))) if mid == id => {
                assert!(
                    status == "pending" || status == ms,
                    "request {id}: {status} after an unanswered {ms}"
                );
            }
            (None, _) => {
                // Another address's link may have decided it only if we did; we did not.
                assert_eq!(
                    status, "pending",
                    "request {id} changed with nobody deciding"
                )
            }
        }
    }
    // Adopt what the lost answers did.
    if let Some(ip) = model.maybe_submit.take() {
        if let Some((id, _)) = stored.iter().find(|(_, (_, i))| *i == ip) {
            model.requests.insert(id.clone(), None);
            model.request_ip.insert(id.clone(), ip);
        }
    }
    if let Some((id, _)) = model.maybe_end.take() {
        let status = stored.get(&id).map(|(s, _)| s.as_str()).unwrap_or("");
        let known = match status {
            "approved" => Some("approved"),
            "rejected" => Some("rejected"),
            "cancelled" => Some("cancelled"),
            _ => None,
        };
        model.requests.insert(id, known);
    }
    for (id, (status, _)) in &stored {
        assert!(
            model.requests.contains_key(id),
            "request {id} ({status}) that nobody submitted"
        );
        if let Some(Some(want)) = model.requests.get(id) {
            assert_eq!(status, want);
        } else {
            assert_eq!(status, "pending", "request {id}");
        }
    }

    // The store's whitelist, the proxy's decisions and the model agree.
    let (s, entries) = gate.admin("GET", "/admin/v1/accounts/acme/whitelist", None);
    assert_eq!(s, 200, "{entries}");
    let listed: BTreeSet<String> = entries
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["cidr"].as_str())
                .map(|c| c.trim_end_matches("/32").to_string())
                .collect()
        })
        .unwrap_or_default();
    let mut expected_live = BTreeSet::new();
    for (ip, known) in model.admin_ips.clone() {
        let live = listed.contains(&ip);
        match known {
            Known::Yes => assert!(live, "{ip} was added (201) and is gone after a kill"),
            Known::No => assert!(!live, "{ip} was removed or never added, yet listed"),
            Known::Maybe => {}
        }
        model
            .admin_ips
            .insert(ip.clone(), if live { Known::Yes } else { Known::No });
        if live {
            expected_live.insert(ip);
        }
    }
    for (id, status) in &model.requests {
        let ip = &model.request_ip[id];
        if *status == Some("approved") {
            expected_live.insert(ip.clone());
        }
    }
    assert_eq!(
        listed, expected_live,
        "the whitelist holds exactly the approved and added addresses"
    );
    for ip in model.admin_ips.keys().chain(model.request_ip.values()) {
        let want = if expected_live.contains(ip) { 200 } else { 403 };
        let (got, body) = gate.get(ip, "/sms/send", &[("X-Account-Id", "acme")]);
        assert_eq!(got, want, "the proxy's answer for {ip}: {body}");
    }

    // No mail is lost: each pending request's link reached both addresses,
    // each decision's notice too; then the outbox is empty.
    let mut wanted = Vec::new();
    for (id, status) in &model.requests {
        let subject = match status {
            None => format!("Confirm IP whitelist request {id} for Acme"),
            Some(s @ ("approved" | "rejected")) => {
                format!("IP whitelist request {id} for Acme was {s}")
            }
            Some(_) => continue,
        };
        for to in EMAILS {
            wanted.push((subject.clone(), to));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mails = gate.mail.mails();
        let missing: Vec<_> = wanted
            .iter()
            .filter(|(subject, to)| {
                !mails
                    .iter()
                    .any(|m| &m.subject == subject && m.to.iter().any(|t| t == to))
            })
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "mail lost: {missing:?}\n{}",
            gate.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    while !gate.metrics_text().contains("ipgate_mail_outbox_depth 0") {
        assert!(
            Instant::now() < deadline,
            "the outbox does not drain:\n{}",
            gate.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn killed_at_random_moments_nothing_decided_is_lost() {
    crash_cycles("sled", Vec::new());
}

/// The same on a PostgreSQL store: a kill may cut a commit off, never
/// half-apply one.
#[test]
fn killed_at_random_moments_nothing_decided_is_lost_on_postgresql() {
    let _turn = crate::postgres::turn();
    let Some(db) = crate::postgres::database() else {
        return;
    };
    crash_cycles("PostgreSQL", db);
}

fn crash_cycles(backend: &str, env: Vec<(String, String)>) {
    let cycles: usize = std::env::var("IPGATE_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let seed: u64 = std::env::var("IPGATE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash test on {backend}: {cycles} cycles, IPGATE_CRASH_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let up = Upstream::start();
    let mut gate = Server::start(
        &up,
        ServerOpts {
            env,
            ..ServerOpts::self_service("max_entries_per_account = 100000")
        },
    );
    let (s, b) = gate.admin(
        "POST",
        "/admin/v1/accounts",
        Some(json!({"id": "acme", "name": "Acme", "emails": EMAILS, "whitelist": "enforce"})),
    );
    assert_eq!(s, 201, "{b}");
    let (token, _) = user(&gate, "acme", "alice", "main", true);
    let client = Client::new(&gate, &token);
    let mut model = Model::default();
    let started = Instant::now();
    for cycle in 0..cycles {
        let kill_after = Duration::from_millis(rng.gen_range(5..400));
        let mut work_rng = StdRng::seed_from_u64(rng.gen());
        std::thread::scope(|s| {
            let gate = &gate;
            let model = &mut model;
            let client = &client;
            let worker = s.spawn(move || {
                workload(gate, client, model, &mut work_rng, Duration::from_secs(3))
            });
            std::thread::sleep(kill_after);
            gate.sigkill();
            if let Err(e) = worker.join() {
                std::panic::resume_unwind(e);
            }
        });
        model.kills += 1;
        gate.kill_and_restart();
        check(&gate, &client, &mut model);
        if (cycle + 1) % 25 == 0 {
            eprintln!(
                "crash test: {} cycles, {} operations, {} requests, {:.0?}",
                cycle + 1,
                model.ops,
                model.requests.len(),
                started.elapsed()
            );
        }
    }
    let decided = model.requests.values().filter(|s| s.is_some()).count();
    eprintln!(
        "crash test on {backend} done: {} kills, {} operations ({} cut off by the kill), {} requests ({decided} ended), {} admin addresses, {} mails, {:.1?}",
        model.kills,
        model.ops,
        model.lost_answers,
        model.requests.len(),
        model.admin_ips.len(),
        gate.mail.mails().len(),
        started.elapsed()
    );
    assert!(
        model.requests.len() >= cycles / 4,
        "the workload did too little"
    );
}
