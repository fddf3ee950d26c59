//! One timer per connection and purpose, reset only when it fires. Arming a
//! timer per request costs more than the request's own work here; a
//! deadline that only moves later can be checked lazily instead.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::time::{sleep_until, Instant, Sleep};

#[derive(Debug)]
pub struct LazyTimer {
    sleep: Pin<Box<Sleep>>,
}

impl LazyTimer {
    pub fn new() -> LazyTimer {
        LazyTimer {
            sleep: Box::pin(sleep_until(Instant::now() + Duration::from_secs(86_400))),
        }
    }

    /// Runs `fut` until `deadline`; `None` if the deadline passed first.
    pub async fn within<F: Future>(&mut self, deadline: Instant, fut: F) -> Option<F::Output> {
        if self.sleep.deadline() > deadline {
            self.sleep.as_mut().reset(deadline);
        }
        tokio::pin!(fut);
        loop {
            tokio::select! {
                biased;
                out = &mut fut => return Some(out),
                () = self.sleep.as_mut() => {
                    if Instant::now() >= deadline {
                        return None;
                    }
                    // It was set for an earlier deadline: wait on.
                    self.sleep.as_mut().reset(deadline);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_later_deadline_is_honoured_and_a_passed_one_ends_the_wait() {
        let mut t = LazyTimer::new();
        let start = Instant::now();
        let quick = t.within(start + Duration::from_secs(1), async { 7 }).await;
        assert_eq!(quick, Some(7));
        // Set for 1 s; a wait until 3 s must not end at 1 s.
        let slow = t
            .within(
                start + Duration::from_secs(3),
                tokio::time::sleep(Duration::from_secs(2)),
            )
            .await;
        assert_eq!(slow, Some(()));
        assert!(start.elapsed() >= Duration::from_secs(2));
        let never = t
            .within(
                Instant::now() + Duration::from_secs(1),
                std::future::pending::<()>(),
            )
            .await;
        assert_eq!(never, None);
        // An earlier deadline than the one set is honoured at once.
        let at = Instant::now() + Duration::from_millis(10);
        let _ = t.within(at + Duration::from_secs(100), async {}).await;
        let cut = t.within(at, std::future::pending::<()>()).await;
        assert_eq!(cut, None);
        assert!(Instant::now() < at + Duration::from_secs(1));
    }
}
