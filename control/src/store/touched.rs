//! What each committed change touched of the proxy's table, noted by the
//! store itself as it writes, so the publisher republishes exactly that:
//! no caller declares (or can forget) what its change touched.
//!
//! A store shared by several control planes (PostgreSQL) also notes the
//! changes the others made, and the store-wide version they reach: the
//! sequence of the newest change all of whose forerunners are noted too.

use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// One part of the table a committed change may have altered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Touch {
    /// An account: its mode and its networks.
    Account(String),
    Blocklist,
    /// An identity value (added or removed): republished as the store now
    /// has it, so a removal needs only the value it had.
    Name(String),
    /// A key hash (added or removed), likewise.
    Key([u8; 32]),
}

/// What was noted since it was last taken.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Noted {
    /// Each touch once, in order.
    pub touches: Vec<Touch>,
    /// A shared store's version once these are republished; `None` for a
    /// store of one control plane (its table counts its own versions).
    pub version: Option<u64>,
}

#[derive(Default)]
struct Inner {
    touches: Vec<Touch>,
    version: u64,
}

/// The touches noted since they were last taken, shared by every clone of
/// the store.
#[derive(Clone, Default)]
pub struct Journal {
    inner: Arc<Mutex<Inner>>,
    shared: bool,
}

impl Journal {
    /// A journal of a store shared with other control planes, its version
    /// starting at `version`.
    pub fn shared(version: u64) -> Journal {
        Journal {
            inner: Arc::new(Mutex::new(Inner {
                touches: Vec::new(),
                version,
            })),
            shared: true,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while pushing cannot leave the list half-written.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn note(&self, touch: Touch) {
        let mut inner = self.lock();
        if !inner.touches.contains(&touch) {
            inner.touches.push(touch);
        }
    }

    /// Notes `touches`, and that the store-wide version `version` is
    /// reached once they are republished.
    pub fn note_up_to(&self, touches: impl IntoIterator<Item = Touch>, version: u64) {
        let mut inner = self.lock();
        for touch in touches {
            if !inner.touches.contains(&touch) {
                inner.touches.push(touch);
            }
        }
        inner.version = inner.version.max(version);
    }

    /// The store-wide version noted so far.
    pub fn version(&self) -> u64 {
        self.lock().version
    }

    /// The touches noted so far, in order, each once; the journal is left
    /// empty.
    pub fn take(&self) -> Noted {
        let mut inner = self.lock();
        Noted {
            touches: std::mem::take(&mut inner.touches),
            version: self.shared.then_some(inner.version),
        }
    }
}
