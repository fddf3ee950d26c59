//! One poll of a control plane's sync feed:
//! `GET {url}/sync/v1/snapshot?after=VERSION&proxy=NAME` with the sync
//! token as a Bearer token. 200: the body (gunzipped when the answer says
//! gzip) is an encoded snapshot, read up to a bound; 304: nothing newer
//! within the poll's hold; anything else is an error naming the status and
//! the feed's error text. Every request is bounded by `poll_timeout` plus
//! a margin.

use ipgate_policy::snapshot::{HEADER_LEN, MAX_PAYLOAD};
use std::io::Read;
use std::time::Duration;

/// The largest answer taken, compressed or not: the largest snapshot.
pub const MAX_BODY: u64 = HEADER_LEN as u64 + MAX_PAYLOAD;

/// How long a connection to a control plane may take. Short, so that a
/// proxy whose link was cut retries soon after it is back: the SYN of an
/// attempt begun just before is resent 1 s later, within this bound.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);

/// Added to `sync.poll_timeout` to bound one request whole.
pub const MARGIN: Duration = Duration::from_secs(10);

/// What one poll brought.
#[derive(Debug)]
pub enum Answer {
    /// A snapshot's encoded bytes (not yet checked), and the version the
    /// answer's `X-Ipgate-Version` header announces.
    Snapshot {
        bytes: Vec<u8>,
        announced: Option<u64>,
    },
    /// Nothing newer than the version sent.
    NotModified,
}

/// Why a poll brought nothing usable.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("the control plane refused the sync token (401): set IPGATE_SYNC_TOKEN (or sync.token_file) to the token the control plane is configured with")]
    Unauthorized,
    #[error("the control plane answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("the answer is over the limit of {MAX_BODY} bytes")]
    TooLarge,
    #[error("the gzip body does not decompress: {0}")]
    Gzip(std::io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot reach the control plane: {0}")]
    Unreachable(String),
}

/// Why the client could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot make the sync client: {0}")]
pub struct ClientError(String);

/// The HTTP client of the feed, with the token and this proxy's name.
pub struct Client {
    http: reqwest::Client,
    token: String,
    name: String,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("name", &self.name)
            .field("token", &"[redacted]")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Client {
    /// A client whose every request ends within `poll_timeout` + [`MARGIN`].
    pub fn new(token: String, name: String, poll_timeout: Duration) -> Result<Client, ClientError> {
        let timeout = poll_timeout + MARGIN;
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ClientError(e.to_string()))?;
        Ok(Client {
            http,
            token,
            name,
            timeout,
        })
    }

    /// The feed's address under control plane `base`.
    pub fn url(base: &str, after: u64, name: &str) -> String {
        format!(
            "{}/sync/v1/snapshot?after={after}&proxy={name}",
            base.trim_end_matches('/')
        )
    }

    /// Polls `base` for anything newer than version `after`.
    pub async fn poll(&self, base: &str, after: u64) -> Result<Answer, PollError> {
        let url = Client::url(base, after, &self.name);
        let timeout = self.timeout;
        // reqwest's own timeout bounds the request; this one also bounds
        // reading the body, chunk by chunk.
        match tokio::time::timeout(timeout, self.fetch(&url)).await {
            Ok(answer) => answer,
            Err(_) => Err(PollError::Timeout(timeout)),
        }
    }

    async fn fetch(&self, url: &str) -> Result<Answer, PollError> {
        let resp = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT_ENCODING, "gzip")
            .header(reqwest::header::ACCEPT, "application/vnd.ipgate.snapshot")
            .send()
            .await
            .map_err(|e| transport(&e, self.timeout))?;
        let status = resp.status().as_u16();
        match status {
            200 => {}
            304 => return Ok(Answer::NotModified),
            401 => return Err(PollError::Unauthorized),
            _ => {
                let body = read_bounded(resp, 4096).await.unwrap_or_default();
                return Err(PollError::Status {
                    status,
                    message: error_text(&body),
                });
            }
        }
        let gzip = resp
            .headers()
            .get(reqwest::header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
        let announced = resp
            .headers()
            .get("x-ipgate-version")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        if resp.content_length().is_some_and(|n| n > MAX_BODY) {
            return Err(PollError::TooLarge);
        }
        let body = match read_bounded(resp, MAX_BODY).await {
            Ok(b) => b,
            Err(Bounded::TooLarge) => return Err(PollError::TooLarge),
            Err(Bounded::Failed(e)) => return Err(transport(&e, self.timeout)),
        };
        let bytes = if gzip {
            tokio::task::spawn_blocking(move || gunzip(&body, MAX_BODY))
                .await
                .map_err(|e| PollError::Unreachable(e.to_string()))??
        } else {
            body
        };
        Ok(Answer::Snapshot { bytes, announced })
    }
}

/// A reqwest error as a poll error, without the URL's query.
fn transport(e: &reqwest::Error, timeout: Duration) -> PollError {
    if e.is_timeout() {
        return PollError::Timeout(timeout);
    }
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        let mut bare = url.clone();
        bare.set_query(None);
        text = text.replace(url.as_str(), bare.as_str());
    }
    PollError::Unreachable(text)
}

enum Bounded {
    TooLarge,
    Failed(reqwest::Error),
}

/// The body, refusing more than `limit` bytes.
async fn read_bounded(mut resp: reqwest::Response, limit: u64) -> Result<Vec<u8>, Bounded> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(Bounded::Failed)? {
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Err(Bounded::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Decompresses `data`, refusing more than `limit` bytes of output.
pub fn gunzip(data: &[u8], limit: u64) -> Result<Vec<u8>, PollError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(PollError::Gzip)?;
    if out.len() as u64 > limit {
        return Err(PollError::TooLarge);
    }
    Ok(out)
}

/// The `error.message` (or `error`) of a JSON error body, else its start.
fn error_text(body: &[u8]) -> String {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let from_json = json.as_ref().and_then(|v| {
        v["error"]["message"]
            .as_str()
            .or(v["error"].as_str())
            .or(v["message"].as_str())
            .map(str::to_string)
    });
    from_json.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        text.chars().take(200).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gunzip_is_bounded() {
        use flate2::write::GzEncoder;
        use std::io::Write;
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&vec![b'a'; 10_000]).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(gunzip(&gz, 10_000).unwrap().len(), 10_000);
        assert!(matches!(gunzip(&gz, 9_999), Err(PollError::TooLarge)));
        assert!(matches!(gunzip(b"not gzip", 100), Err(PollError::Gzip(_))));
    }

    #[test]
    fn the_url_carries_the_version_and_the_name() {
        assert_eq!(
            Client::url("http://cp:9090/", 7, "edge-1"),
            "http://cp:9090/sync/v1/snapshot?after=7&proxy=edge-1"
        );
    }

    #[test]
    fn error_texts_come_from_the_json() {
        assert_eq!(
            error_text(br#"{"error":{"code":"x","message":"no snapshot"}}"#),
            "no snapshot"
        );
        assert_eq!(error_text(br#"{"error":"no token"}"#), "no token");
        assert_eq!(error_text(b"plain"), "plain");
    }
}
