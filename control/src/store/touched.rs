//! What each committed change touched of the proxy's table, noted by the
//! store itself as it writes, so the publisher republishes exactly that:
//! no caller declares (or can forget) what its change touched.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// One part of the table a committed change may have altered.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// The touches noted since they were last taken, shared by every clone of
/// the store.
#[derive(Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<Touch>>>);

impl Journal {
    fn lock(&self) -> MutexGuard<'_, Vec<Touch>> {
        // A panic while pushing cannot leave the list half-written.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn note(&self, touch: Touch) {
        let mut touches = self.lock();
        if !touches.contains(&touch) {
            touches.push(touch);
        }
    }

    /// The touches noted so far, in order, each once; the journal is left
    /// empty.
    pub fn take(&self) -> Vec<Touch> {
        std::mem::take(&mut *self.lock())
    }
}
