//! Sends the blocked calls counted ([`crate::blocked`]) to the control
//! plane every [`EVERY`]: taken out of the sketch, handed to a [`Sink`]
//! (the store in one process, `POST /sync/v1/blocked-calls` in a fleet),
//! and put back when that failed, so they go with the next report. What is
//! put back stays within the sketch's bound.

use crate::blocked::BlockedCalls;
use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use std::sync::Arc;
use std::time::Duration;

/// How often the counts are reported.
pub const EVERY: Duration = Duration::from_secs(10);
/// Lines per request (about 150 bytes each, well under the control
/// plane's body limit).
pub const BATCH: usize = 2000;
/// How long one request of a report may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Where a report goes. `lines` are [`BlockedCalls::report_line`]s.
#[async_trait]
pub trait Sink: Send + Sync {
    async fn send(&self, lines: Vec<serde_json::Value>) -> Result<(), String>;
}

/// The reporting loop, a background service.
pub struct Reporter {
    pub blocked: Arc<BlockedCalls>,
    pub sink: Box<dyn Sink>,
    pub every: Duration,
}

impl Reporter {
    /// Reports once: what was counted since the last report, in batches
    /// of at most [`BATCH`] lines (a batch that fails is put back, with
    /// the batches after it).
    pub async fn report(&self) {
        let mut taken = self.blocked.take();
        while !taken.is_empty() {
            let rest = taken.split_off(taken.len().min(BATCH));
            let lines = taken.iter().map(|t| self.blocked.report_line(t)).collect();
            let failed = match tokio::time::timeout(TIMEOUT, self.sink.send(lines)).await {
                Ok(Ok(())) => {
                    taken = rest;
                    continue;
                }
                Ok(Err(e)) => e,
                Err(_) => format!("no answer within {TIMEOUT:?}"),
            };
            tracing::warn!(error = %failed, lines = taken.len() + rest.len(), "reporting blocked calls failed; they go with the next report");
            self.blocked.put_back(taken);
            self.blocked.put_back(rest);
            return;
        }
    }
}

#[async_trait]
impl BackgroundService for Reporter {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => self.report().await,
                _ = shutdown.changed() => {
                    // A last report, so a stop loses little.
                    self.report().await;
                    return;
                }
            }
        }
    }
}

/// A fleet's sink: `POST {url}/sync/v1/blocked-calls` with the sync token,
/// to each control plane in turn until one takes it.
pub struct HttpSink {
    http: reqwest::Client,
    urls: Vec<String>,
    token: String,
}

impl HttpSink {
    pub fn new(urls: Vec<String>, token: String) -> Result<HttpSink, reqwest::Error> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(crate::follow::client::CONNECT_TIMEOUT)
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(HttpSink { http, urls, token })
    }
}

#[async_trait]
impl Sink for HttpSink {
    async fn send(&self, lines: Vec<serde_json::Value>) -> Result<(), String> {
        let body = serde_json::json!({ "calls": lines });
        let mut last = String::from("no control_urls");
        for base in &self.urls {
            let url = format!("{}/sync/v1/blocked-calls", base.trim_end_matches('/'));
            match self
                .http
                .post(&url)
                .bearer_auth(&self.token)
                .json(&body)
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => last = format!("{url} answered {}", r.status()),
                Err(e) => last = format!("{url}: {e}"),
            }
        }
        Err(last)
    }
}
