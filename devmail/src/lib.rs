//! `ipgate-devmail`: a tiny SMTP server that catches mail instead of
//! delivering it.
//!
//! `ipgate demo` points its mailer at a [`Catcher`] and shows what arrived
//! at `/dev/mailbox`; black-box tests point the real binary at one and read
//! the confirmation links out of the received [`Mail`]s. It speaks plain
//! SMTP (no TLS) on blocking `std::net` sockets, one thread per connection,
//! so sync tests and async programs can both use it.
//!
//! **For the demo and tests only, never production:** it keeps every
//! message in memory, offers no TLS, and accepts *any* credentials for
//! `AUTH PLAIN` and `AUTH LOGIN` (it does not advertise `AUTH`, but answers
//! a client that tries anyway).
//!
//! [`Catcher::set_mode`] lets a test make the server answer `451` or stop
//! listening, to exercise the product's retry path.

#![forbid(unsafe_code)]

mod lines;
mod mail;
mod smtp;

use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufReader};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

pub use mail::Mail;

/// How often the accept loop looks for new connections, mode and stop.
const POLL: Duration = Duration::from_millis(10);
/// Read and write timeout on each client socket.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Catcher::set_mode`] keeps trying to bind the port again.
const REBIND_FOR: Duration = Duration::from_secs(2);

/// How the catcher answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Accept every message.
    #[default]
    Accept,
    /// Answer `451 4.3.0 try again later` to every `MAIL FROM`; the rest
    /// of the dialogue stays normal.
    TempFail,
    /// Answer `550 5.1.1 mailbox unavailable` to every `RCPT TO`: a
    /// permanent refusal, as for an address that does not exist.
    Reject,
    /// Stop listening: new connections are refused and open sessions are
    /// cut. Switching back to another mode listens on the same port again.
    Down,
    /// Accept, but wait this long before every reply (greeting included).
    Slow(Duration),
    /// Read the whole message, then close the connection without an
    /// answer and without keeping the mail: the sender cannot know.
    Hangup,
}

/// A running mail catcher. Dropping it (or [`Catcher::stop`]) stops the
/// server and cuts open sessions.
pub struct Catcher {
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl Catcher {
    /// Binds `addr` (use `127.0.0.1:0` for a free port) and serves in a
    /// background thread, one more thread per connection.
    pub fn start(addr: SocketAddr) -> io::Result<Catcher> {
        let listener = bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            addr,
            mode: Mutex::new(Mode::Accept),
            listener: Mutex::new(Some(listener)),
            mails: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            last_mail_id: AtomicU64::new(0),
            sessions: Mutex::new(HashMap::new()),
            last_session_id: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
        });
        let accept_thread = thread::Builder::new()
            .name("devmail-accept".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || accept_loop(&shared)
            })?;
        tracing::info!(%addr, "devmail: catching mail");
        Ok(Catcher {
            shared,
            accept_thread: Some(accept_thread),
        })
    }

    /// The address it listens on (the real port if started with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Every message received so far, in order of arrival.
    pub fn mails(&self) -> Vec<Mail> {
        lock(&self.shared.mails).clone()
    }

    /// Waits until at least `n` messages have arrived or `timeout` has
    /// passed, then returns all messages (fewer than `n` on timeout).
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Mail> {
        let deadline = Instant::now().checked_add(timeout);
        let mut mails = lock(&self.shared.mails);
        while mails.len() < n {
            let wait = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if wait.is_zero() {
                break;
            }
            mails = match self.shared.arrived.wait_timeout(mails, wait) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        mails.clone()
    }

    /// The mode in force.
    pub fn mode(&self) -> Mode {
        *lock(&self.shared.mode)
    }

    /// Changes how the catcher answers. Takes effect before it returns:
    /// `Down` has closed the port and cut open sessions; leaving `Down` has
    /// bound the same port again (retrying for about 2 s while the port is
    /// busy; if it still is, the background thread keeps trying).
    pub fn set_mode(&self, mode: Mode) {
        let mut current = lock(&self.shared.mode);
        *current = mode;
        let mut listener = lock(&self.shared.listener);
        if mode == Mode::Down {
            *listener = None;
            self.shared.cut_sessions();
        } else if listener.is_none() {
            *listener = rebind(self.shared.addr);
        }
        tracing::info!(?mode, addr = %self.shared.addr, "devmail: mode changed");
    }

    /// Stops the server: closes the port, cuts open sessions and waits for
    /// the background thread. Same as dropping the catcher.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Catcher {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        if let Some(thread) = self.accept_thread.take() {
            if thread.join().is_err() {
                tracing::warn!("devmail: accept thread panicked");
            }
        }
        *lock(&self.shared.listener) = None;
        self.shared.cut_sessions();
    }
}

impl fmt::Debug for Catcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Catcher")
            .field("addr", &self.shared.addr)
            .field("mode", &self.mode())
            .field("mails", &lock(&self.shared.mails).len())
            .finish()
    }
}

/// State shared by the handle, the accept loop and the sessions.
///
/// Lock order: `mode`, then `listener`, then `sessions`.
struct Shared {
    addr: SocketAddr,
    mode: Mutex<Mode>,
    /// `None` while `Down` (or while a rebind keeps failing).
    listener: Mutex<Option<TcpListener>>,
    mails: Mutex<Vec<Mail>>,
    arrived: Condvar,
    last_mail_id: AtomicU64,
    /// A handle on each open session's socket, to cut it on `Down`/stop.
    sessions: Mutex<HashMap<u64, TcpStream>>,
    last_session_id: AtomicU64,
    stopping: AtomicBool,
}

impl Shared {
    /// Accepts one pending connection, if any, and registers it. Holds the
    /// mode lock so a concurrent `Down` cannot miss the new session.
    fn poll_accept(&self) -> Option<(u64, TcpStream)> {
        let mode = lock(&self.mode);
        let mut listener = lock(&self.listener);
        if *mode != Mode::Down && listener.is_none() {
            *listener = bind(self.addr).ok();
        }
        let (stream, peer) = match listener.as_ref()?.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(e) => {
                tracing::debug!(error = %e, "devmail: accept failed");
                return None;
            }
        };
        let registered = stream.try_clone().and_then(|handle| {
            stream.set_nonblocking(false)?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(IO_TIMEOUT))?;
            stream.set_write_timeout(Some(IO_TIMEOUT))?;
            Ok(handle)
        });
        match registered {
            Ok(handle) => {
                let id = self.last_session_id.fetch_add(1, Ordering::Relaxed) + 1;
                lock(&self.sessions).insert(id, handle);
                tracing::debug!(id, %peer, "devmail: session opened");
                Some((id, stream))
            }
            Err(e) => {
                tracing::warn!(error = %e, %peer, "devmail: could not set up connection");
                None
            }
        }
    }

    fn cut_sessions(&self) {
        for (_, stream) in lock(&self.sessions).drain() {
            // The peer may have closed already; nothing to do then.
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl smtp::Mailroom for Shared {
    fn mode(&self) -> Mode {
        *lock(&self.mode)
    }

    fn deliver(&self, from: String, to: Vec<String>, raw: Vec<u8>) -> u64 {
        // Ids are taken under the lock so that arrival order is id order.
        let mut mails = lock(&self.mails);
        let id = self.last_mail_id.fetch_add(1, Ordering::Relaxed) + 1;
        let mail = Mail::parse(id, from, to, &raw, SystemTime::now());
        tracing::info!(id, from = %mail.from, to = ?mail.to, subject = %mail.subject, "devmail: caught mail");
        mails.push(mail);
        self.arrived.notify_all();
        id
    }
}

fn accept_loop(shared: &Arc<Shared>) {
    while !shared.stopping.load(Ordering::Acquire) {
        match shared.poll_accept() {
            Some((id, stream)) => spawn_session(shared, id, stream),
            None => thread::sleep(POLL),
        }
    }
}

fn spawn_session(shared: &Arc<Shared>, id: u64, stream: TcpStream) {
    let shared_for_thread = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name(format!("devmail-session-{id}"))
        .spawn(move || {
            let shared = shared_for_thread;
            let result = stream
                .try_clone()
                .and_then(|reader| smtp::serve(BufReader::new(reader), &stream, &*shared));
            if let Err(e) = result {
                tracing::debug!(id, error = %e, "devmail: session ended with an error");
            }
            lock(&shared.sessions).remove(&id);
            tracing::debug!(id, "devmail: session closed");
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "devmail: could not start a session thread");
        lock(&shared.sessions).remove(&id);
    }
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Binds `addr` again, retrying while the port is still busy.
fn rebind(addr: SocketAddr) -> Option<TcpListener> {
    let deadline = Instant::now() + REBIND_FOR;
    loop {
        match bind(addr) {
            Ok(listener) => return Some(listener),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                tracing::warn!(%addr, error = %e, "devmail: could not listen again; will keep trying");
                return None;
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
