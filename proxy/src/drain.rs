//! A graceful stop that lets calls already passed upstream finish. On
//! SIGTERM the proxy starts draining: a call not yet passed on is refused
//! (503, nothing reached the upstream, so the caller can safely retry
//! elsewhere), kept-alive connections close after their current answer,
//! and the stop waits until no call is in flight, for at most
//! `proxy.drain_timeout`. Only then does Pingora tear its runtimes down,
//! which drops whatever is still running.
//!
//! A hand-over (SIGQUIT, `ipgate proxy --upgrade`) is gentler: the new
//! process takes the listening sockets, and this one refuses nothing. It
//! serves each request still sent to it, answering with `Connection:
//! close` so the client's next call opens a connection the new process
//! accepts, and stops once its last connection has closed.
//!
//! A call enters by raising the count and then checking the flag; the stop
//! sets the flag and then reads the count. Both in sequentially consistent
//! order, so either the call sees the flag (and is refused) or the stop
//! sees the call (and waits for it).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Default)]
pub struct Drain {
    draining: AtomicBool,
    handing_over: AtomicBool,
    in_flight: AtomicUsize,
    idle: Notify,
}

/// One call in flight; the count falls when it is dropped.
pub struct InFlight(Arc<Drain>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// How a drain ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Drained {
    /// No call was left in flight.
    Idle,
    /// The timeout passed with this many calls still in flight.
    TimedOut(usize),
}

impl Drain {
    /// A call about to be passed upstream; `None` once draining (refuse it).
    pub fn enter(self: &Arc<Self>) -> Option<InFlight> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = InFlight(self.clone());
        if self.draining.load(Ordering::SeqCst) {
            return None;
        }
        Some(guard)
    }

    /// Whether a stop has begun: kept-alive connections close after their
    /// current answer.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// The listening sockets go to a new process: every answer from now
    /// on closes its connection (nothing is refused). A flag on its own,
    /// read against no count, so relaxed order does.
    pub fn hand_over(&self) {
        self.handing_over.store(true, Ordering::Relaxed);
    }

    /// Whether a hand-over has begun: answer with `Connection: close`.
    pub fn handing_over(&self) -> bool {
        self.handing_over.load(Ordering::Relaxed)
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Begins draining and waits until no call is in flight, for at most
    /// `timeout`.
    pub async fn drain(&self, timeout: Duration) -> Drained {
        self.draining.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before the count is read, so a last call ending
            // in between still wakes this.
            let idle = self.idle.notified();
            let left = self.in_flight();
            if left == 0 {
                return Drained::Idle;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return match self.in_flight() {
                    0 => Drained::Idle,
                    n => Drained::TimedOut(n),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_drain_waits_for_the_calls_in_flight_and_refuses_new_ones() {
        let d = Arc::new(Drain::default());
        let call = d.enter();
        assert!(call.is_some());
        let waiter = {
            let d = d.clone();
            tokio::spawn(async move { d.drain(Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(d.draining());
        assert!(d.enter().is_none(), "a call entering a drain is refused");
        assert!(!waiter.is_finished(), "one call is still in flight");
        drop(call);
        assert_eq!(waiter.await.ok(), Some(Drained::Idle));
        assert_eq!(d.in_flight(), 0);
    }

    #[test]
    fn a_hand_over_refuses_nothing() {
        let d = Arc::new(Drain::default());
        d.hand_over();
        assert!(d.handing_over());
        assert!(!d.draining());
        assert!(d.enter().is_some(), "a hand-over lets calls through");
    }

    #[tokio::test]
    async fn a_drain_gives_up_after_its_timeout() {
        let d = Arc::new(Drain::default());
        let _stuck = d.enter();
        assert_eq!(
            d.drain(Duration::from_millis(50)).await,
            Drained::TimedOut(1)
        );
    }
}
