//! Idle upstream connections of one route, kept for the next request. A
//! plain stack under an uncontended lock: no hashing, no LRU.

use std::sync::Mutex;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long an idle upstream connection is kept (as Pingora's path does).
pub const IDLE: Duration = Duration::from_secs(60);

/// At most this many idle connections per route.
const MAX_IDLE: usize = 256;

#[derive(Debug, Default)]
pub struct Pool {
    idle: Mutex<Vec<(TcpStream, Instant)>>,
}

impl Pool {
    /// The most recently used idle connection that is not too old.
    pub fn take(&self) -> Option<TcpStream> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((conn, since)) = idle.pop() {
            if since.elapsed() < IDLE && still_open(&conn) {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps a connection whose last answer ended cleanly.
    pub fn put(&self, conn: TcpStream) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push((conn, Instant::now()));
        }
    }
}

/// Whether an idle upstream connection can take a request: the upstream
/// has neither closed it nor sent anything unasked. Checked without
/// waiting, so that a request that may not be sent twice is not sent on a
/// connection already known to be gone.
fn still_open(conn: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(conn.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}
