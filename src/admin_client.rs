//! The admin API's HTTP client, shared by `ipgate admin ...` (`admin_cli`)
//! and its CSV import (`admin_import`): one kept-alive connection with the
//! admin token, and escaping of the ids put into its paths.

use anyhow::Context;
use serde_json::Value;

/// One id as a path segment of an admin API URL, percent-escaped.
pub fn seg(s: &str) -> String {
    // Path segments are ids the server validates; escape anything odd anyway.
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._@+".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One connection to the admin API, kept alive across calls.
pub struct AdminClient {
    base: String,
    token: String,
    http: reqwest::blocking::Client,
}

impl AdminClient {
    pub fn new(base: String, token: &str) -> anyhow::Result<AdminClient> {
        // The admin URL is called directly, never through `http_proxy`:
        // the token must not go to a proxy (reqwest reads the variables).
        let http = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        Ok(AdminClient {
            base,
            token: token.to_string(),
            http,
        })
    }

    /// Sends one call; the answer's status and body, or why it did not arrive.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(reqwest::StatusCode, String)> {
        let url = format!("{}{path}", self.base);
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().with_context(|| {
            format!(
                "cannot reach the admin API at {}; is ipgate running?",
                self.base
            )
        })?;
        let status = resp.status();
        Ok((status, resp.text().unwrap_or_default()))
    }
}
