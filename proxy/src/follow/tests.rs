//! The poll loop against a small HTTP/1 feed started in the test, serving
//! real encoded snapshots, 304s after a short hold, 401s and damage.

use super::*;
use ipgate_policy::snapshot::{Contents, SnapshotAccount};
use ipgate_policy::Mode;
use std::io::Write;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const TOKEN: &str = "sync-token-0123456789";

/// What the feed answers.
#[derive(Default)]
struct FeedState {
    /// The encoded snapshot served, and its version.
    current: Option<(Vec<u8>, u64)>,
    /// Answer 401 unless the token is this one.
    token: String,
    gzip: bool,
    /// Answer every poll with this status and a JSON error.
    down: Option<u16>,
    /// Serve `current` even when it is not newer than `after`.
    always: bool,
    /// (after, proxy) of every poll seen.
    seen: Vec<(u64, String)>,
}

struct Feed {
    url: String,
    state: Arc<Mutex<FeedState>>,
}

impl Feed {
    async fn start() -> Feed {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(FeedState {
            token: TOKEN.to_string(),
            ..FeedState::default()
        }));
        let s = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let answer = answer(&s, &String::from_utf8_lossy(&buf)).await;
                    let _ = sock.write_all(&answer).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Feed { url, state }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FeedState> {
        self.state.lock().unwrap()
    }

    fn serve(&self, version: u64) {
        self.lock().current = Some((snapshot(version).encode(), version));
    }
}

fn response(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

async fn answer(state: &Mutex<FeedState>, head: &str) -> Vec<u8> {
    let target = head.split(' ').nth(1).unwrap_or("");
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let param = |k: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .unwrap_or("")
            .to_string()
    };
    let after: u64 = param("after").parse().unwrap_or(0);
    let auth = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("authorization: ")
                .or(l.strip_prefix("Authorization: "))
        })
        .unwrap_or("")
        .trim()
        .to_string();
    let ready = {
        let mut s = state.lock().unwrap();
        s.seen.push((after, param("proxy")));
        if !target.starts_with("/sync/v1/snapshot?") {
            return response("404 Not Found", &[], b"{}");
        }
        if auth != format!("Bearer {}", s.token) {
            return response(
                "401 Unauthorized",
                &[],
                br#"{"error":{"code":"unauthorized","message":"bad token"}}"#,
            );
        }
        if let Some(code) = s.down {
            return response(
                &format!("{code} Down"),
                &[],
                br#"{"error":{"code":"unavailable","message":"no snapshot"}}"#,
            );
        }
        match &s.current {
            Some((bytes, v)) if *v > after || s.always => Some((bytes.clone(), *v, s.gzip)),
            _ => None,
        }
    };
    let Some((bytes, v, gzip)) = ready else {
        tokio::time::sleep(Duration::from_millis(150)).await;
        return response("304 Not Modified", &[], b"");
    };
    let mut headers = vec![
        (
            "Content-Type",
            "application/vnd.ipgate.snapshot".to_string(),
        ),
        ("X-Ipgate-Version", v.to_string()),
    ];
    let body = if gzip {
        headers.push(("Content-Encoding", "gzip".to_string()));
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&bytes).unwrap();
        enc.finish().unwrap()
    } else {
        bytes
    };
    response("200 OK", &headers, &body)
}

fn snapshot(version: u64) -> Snapshot {
    Snapshot::new(Contents {
        version,
        made: 1_700_000_000,
        accounts: vec![SnapshotAccount {
            id: format!("acct-{version}"),
            mode: Mode::Enforce,
            nets: vec!["203.0.113.0/24".parse().unwrap()],
            ending: Vec::new(),
        }],
        ..Contents::default()
    })
    .unwrap()
}

struct Running {
    follower: Arc<Follower>,
    table: Arc<LiveTable>,
    dir: tempfile::TempDir,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl Running {
    fn path(&self) -> PathBuf {
        self.dir.path().join("snapshot.bin")
    }

    async fn until(&self, what: &str, f: impl Fn(&Running) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !f(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn version(&self) -> u64 {
        self.table.load().version()
    }
    fn refusal(&self) -> Option<Refusal> {
        self.table.load().refusal()
    }
}

fn follower(
    urls: Vec<String>,
    dir: &tempfile::TempDir,
    max_stale: Duration,
) -> (Arc<Follower>, Arc<LiveTable>) {
    let table = Arc::new(LiveTable::new(Follower::no_table()));
    let config = FollowConfig {
        control_urls: urls,
        snapshot_path: dir.path().join("snapshot.bin"),
        max_stale,
        poll_timeout: Duration::from_millis(300),
        name: "edge-1".into(),
        token: TOKEN.into(),
    };
    let f = Follower::new(config, table.clone(), &Registry::new()).unwrap();
    (Arc::new(f), table)
}

fn start(urls: Vec<String>, max_stale: Duration) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let (follower, table) = follower(urls, &dir, max_stale);
    follower.load_saved();
    let (stop, watch) = tokio::sync::watch::channel(false);
    let f = follower.clone();
    tokio::spawn(async move { f.run(watch).await });
    Running {
        follower,
        table,
        dir,
        _stop: stop,
    }
}

#[tokio::test]
async fn follows_each_new_version_and_saves_it() {
    let feed = Feed::start().await;
    let r = start(vec![feed.url.clone()], Duration::ZERO);
    assert_eq!(
        r.refusal(),
        Some(Refusal::NoTable),
        "no table before the first poll answers"
    );
    feed.serve(1);
    r.until("version 1", |r| r.version() == 1).await;
    assert_eq!(r.refusal(), None);
    assert!(r.table.load().account("acct-1").is_some());
    feed.serve(2);
    r.until("version 2", |r| r.version() == 2).await;
    r.until("the save", |r| {
        saved::read(&r.path())
            .ok()
            .flatten()
            .is_some_and(|s| s.version() == 2)
    })
    .await;
    assert_eq!(
        saved::read(&saved::prev_path(&r.path()))
            .unwrap()
            .unwrap()
            .version(),
        1
    );
    let seen = feed.lock().seen.clone();
    assert_eq!(seen.first(), Some(&(0, "edge-1".to_string())));
    assert!(seen.contains(&(1, "edge-1".to_string())), "{seen:?}");
    r.until("a poll after version 2", |_| {
        feed.lock().seen.iter().any(|s| s.0 == 2)
    })
    .await;
    assert_eq!(r.follower.metrics.rejected_count(Rejected::OlderVersion), 0);
}

#[tokio::test]
async fn a_gzip_answer_is_decompressed() {
    let feed = Feed::start().await;
    feed.lock().gzip = true;
    feed.serve(5);
    let r = start(vec![feed.url.clone()], Duration::ZERO);
    r.until("version 5", |r| r.version() == 5).await;
}

#[tokio::test]
async fn a_wrong_token_is_counted_and_retried_and_nothing_is_allowed() {
    let feed = Feed::start().await;
    feed.lock().token = "another-token-0123456789".into();
    feed.serve(3);
    let r = start(vec![feed.url.clone()], Duration::ZERO);
    r.until("two refusals", |r| {
        r.follower.metrics.rejected_count(Rejected::Unauthorized) >= 2
    })
    .await;
    assert_eq!(r.refusal(), Some(Refusal::NoTable));
    feed.lock().token = TOKEN.into();
    r.until("version 3", |r| r.version() == 3).await;
}

#[tokio::test]
async fn damaged_and_older_snapshots_are_refused_and_the_table_kept() {
    let feed = Feed::start().await;
    feed.serve(4);
    let r = start(vec![feed.url.clone()], Duration::ZERO);
    r.until("version 4", |r| r.version() == 4).await;

    // Version 9 with one payload byte changed.
    let mut bytes = snapshot(9).encode();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x20;
    feed.lock().current = Some((bytes, 9));
    r.until("a checksum refusal", |r| {
        r.follower.metrics.rejected_count(Rejected::Checksum) >= 1
    })
    .await;
    assert_eq!((r.version(), r.refusal()), (4, None));

    // Cut short.
    let bytes = snapshot(9).encode();
    feed.lock().current = Some((bytes[..bytes.len() / 2].to_vec(), 9));
    r.until("a malformed refusal", |r| {
        r.follower.metrics.rejected_count(Rejected::Malformed) >= 1
    })
    .await;

    // An older version, served though not asked for.
    {
        let mut s = feed.lock();
        s.current = Some((snapshot(2).encode(), 2));
        s.always = true;
    }
    r.until("an older-version refusal", |r| {
        r.follower.metrics.rejected_count(Rejected::OlderVersion) >= 1
    })
    .await;
    assert_eq!(r.version(), 4);
    assert_eq!(
        saved::read(&r.path()).unwrap().unwrap().version(),
        4,
        "nothing refused is saved"
    );
}

#[tokio::test]
async fn an_unreachable_control_plane_is_skipped_for_the_next() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let feed = Feed::start().await;
    feed.serve(7);
    let r = start(vec![dead, feed.url.clone()], Duration::ZERO);
    r.until("version 7", |r| r.version() == 7).await;
}

#[tokio::test]
async fn a_stale_table_is_refused_until_the_next_success() {
    let feed = Feed::start().await;
    feed.serve(1);
    let r = start(vec![feed.url.clone()], Duration::from_millis(400));
    r.until("version 1", |r| r.version() == 1).await;
    feed.lock().down = Some(503);
    r.until("stale", |r| r.refusal() == Some(Refusal::Stale))
        .await;
    assert_eq!(
        r.version(),
        1,
        "the stand-in keeps the version for the metrics"
    );
    feed.lock().down = None;
    r.until("judging again", |r| r.refusal().is_none()).await;
    assert_eq!(r.version(), 1);
}

#[tokio::test]
async fn a_saved_snapshot_is_served_at_once_and_a_damaged_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let unreachable = vec!["http://127.0.0.1:9".to_string()];
    saved::save(
        &dir.path().join("snapshot.bin"),
        &snapshot(6).encode(),
        saved::Current::Keep,
    )
    .unwrap();
    let (f, table) = follower(unreachable.clone(), &dir, Duration::ZERO);
    assert_eq!(f.load_saved(), Some(6));
    assert_eq!((table.load().version(), table.load().refusal()), (6, None));
    assert_eq!(f.version(), 6);

    // Damaged, with no `.prev`: still refusing.
    let path = dir.path().join("snapshot.bin");
    let whole = std::fs::read(&path).unwrap();
    std::fs::write(&path, &whole[..whole.len() - 1]).unwrap();
    let (f, table) = follower(unreachable, &dir, Duration::ZERO);
    assert_eq!(f.load_saved(), None);
    assert_eq!(table.load().refusal(), Some(Refusal::NoTable));
}

#[tokio::test]
async fn a_damaged_file_is_not_kept_as_prev_by_the_next_save() {
    let feed = Feed::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snapshot.bin");
    saved::save(&path, &snapshot(2).encode(), saved::Current::Keep).unwrap();
    saved::save(&path, &snapshot(3).encode(), saved::Current::Keep).unwrap();
    std::fs::write(&path, b"IPGATE-SNAPSHOT and then nonsense").unwrap();
    let (f, table) = follower(vec![feed.url.clone()], &dir, Duration::ZERO);
    assert_eq!(f.load_saved(), Some(2), "served from .prev");
    feed.serve(8);
    let (_stop, watch) = tokio::sync::watch::channel(false);
    let runner = f.clone();
    tokio::spawn(async move { runner.run(watch).await });
    let deadline = Instant::now() + Duration::from_secs(5);
    while saved::read(&path).ok().flatten().map(|s| s.version()) != Some(8) {
        assert!(Instant::now() < deadline, "version 8 not saved");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(table.load().version(), 8);
    let prev = saved::read(&saved::prev_path(&path)).unwrap().unwrap();
    assert_eq!(prev.version(), 2, "the whole .prev stays");
}
