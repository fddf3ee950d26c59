//! Time-bound entries, from the control plane's side: each is removed from
//! the store when it ends (with its `whitelist.expired` record, and the
//! table republished; the proxies have dropped it by then already, each
//! by itself), and every account email is reminded before it ends, once
//! per reminder of `control.expiry_reminders`.

use crate::domain::model::WhitelistEntry;
use crate::domain::Timestamp;
use crate::service::publish::Publisher;
use std::time::Duration;

/// Which of the reminders (`offsets`, in seconds before the end, largest
/// first) have had their time by `now` for `e`: how many, and whether the
/// latest should be mailed (the entry existed at its time; an entry made
/// for 2 days skips the 3-day reminder). `None` when nothing is due.
pub fn due_reminder(e: &WhitelistEntry, offsets: &[u64], now: Timestamp) -> Option<(u8, bool)> {
    let end = e.expires_at?;
    if end <= now {
        return None;
    }
    let left = end.unix() - now.unix();
    let passed = offsets.iter().filter(|o| **o >= left).count();
    let stage = u8::try_from(passed).ok()?;
    if stage <= e.reminded {
        return None;
    }
    let mark = end.unix().saturating_sub(offsets[passed - 1]);
    Some((stage, e.created_at.unix() < mark))
}

/// The reminders' offsets in seconds, largest first, without repeats.
pub fn offsets(reminders: &[Duration]) -> Vec<u64> {
    let mut o: Vec<u64> = reminders.iter().map(Duration::as_secs).collect();
    o.sort_unstable_by(|a, b| b.cmp(a));
    o.dedup();
    o
}

/// One second's work on time-bound entries, from one read of those that
/// end by the furthest reminder: the ended ones are removed, the others
/// reminded of when due.
pub async fn tick(publisher: &Publisher, offsets: &[u64]) {
    let now = Timestamp::now();
    let until = now.plus_secs(offsets.first().copied().unwrap_or(0));
    let soon = match publisher.store.entries_ending_by(until).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "reading the whitelist entries about to end failed");
            return;
        }
    };
    let (ended, left): (Vec<WhitelistEntry>, Vec<WhitelistEntry>) =
        soon.into_iter().partition(|e| e.ended(now));
    if !ended.is_empty() {
        expire(publisher, ended, now).await;
    }
    remind(publisher, left, offsets, now).await;
}

/// Removes `due` (entries that ended by `now`), through the publisher.
async fn expire(publisher: &Publisher, due: Vec<WhitelistEntry>, now: Timestamp) {
    let removed = publisher
        .change(|st| async move {
            let mut removed = Vec::new();
            for e in due {
                if let Some(gone) = st.expire_entry(e.account.as_str(), &e.id, now).await? {
                    removed.push(gone);
                }
            }
            Ok(removed)
        })
        .await;
    match removed {
        Ok(r) => {
            for e in &r {
                tracing::info!(account = %e.account, entry = %e.id, cidr = %e.cidr, "time-bound whitelist entry ended and was removed");
            }
        }
        Err(e) => tracing::error!(error = %e, "removing ended whitelist entries failed"),
    }
}

/// Queues the reminders of `soon` that are due at `now`.
async fn remind(publisher: &Publisher, soon: Vec<WhitelistEntry>, offsets: &[u64], now: Timestamp) {
    let store = &publisher.store;
    for e in soon {
        let Some((stage, mail)) = due_reminder(&e, offsets, now) else {
            continue;
        };
        match store
            .remind_entry(e.account.as_str(), &e.id, stage, mail)
            .await
        {
            Ok(true) if mail => {
                tracing::info!(account = %e.account, entry = %e.id, cidr = %e.cidr, reminder = stage, "expiry reminder queued");
            }
            Ok(_) => {}
            Err(err) => {
                tracing::error!(account = %e.account, entry = %e.id, error = %err, "queueing an expiry reminder failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::entry_of;

    fn entry(created: u64, ends: u64, reminded: u8) -> WhitelistEntry {
        WhitelistEntry {
            created_at: Timestamp::from_unix(created),
            expires_at: Some(Timestamp::from_unix(ends)),
            reminded,
            ..entry_of("acme", "203.0.113.10/32")
        }
    }

    #[test]
    fn each_reminder_comes_once_at_its_time() {
        let day = 86_400;
        let offsets = offsets(&[Duration::from_secs(day), Duration::from_secs(3 * day)]);
        assert_eq!(offsets, vec![3 * day, day]);
        let end = 100 * day;
        let e = entry(0, end, 0);
        let at = |s: u64| Timestamp::from_unix(s);
        assert_eq!(due_reminder(&e, &offsets, at(end - 3 * day - 1)), None);
        assert_eq!(
            due_reminder(&e, &offsets, at(end - 3 * day)),
            Some((1, true))
        );
        let e = entry(0, end, 1);
        assert_eq!(due_reminder(&e, &offsets, at(end - 2 * day)), None, "once");
        assert_eq!(due_reminder(&e, &offsets, at(end - day)), Some((2, true)));
        let e = entry(0, end, 2);
        assert_eq!(due_reminder(&e, &offsets, at(end - 1)), None);
        assert_eq!(due_reminder(&e, &offsets, at(end)), None, "ended");
    }

    #[test]
    fn a_reminder_whose_time_passed_before_the_entry_existed_is_skipped() {
        let day = 86_400;
        let offsets = [3 * day, day];
        let end = 100 * day;
        // Made for two days: the 3-day mark was before it existed.
        let e = entry(end - 2 * day, end, 0);
        let at = |s: u64| Timestamp::from_unix(s);
        assert_eq!(
            due_reminder(&e, &offsets, at(end - 2 * day)),
            Some((1, false))
        );
        let e = entry(end - 2 * day, end, 1);
        assert_eq!(due_reminder(&e, &offsets, at(end - day)), Some((2, true)));
        // A control plane down through both marks sends the latest only.
        let e = entry(0, end, 0);
        assert_eq!(due_reminder(&e, &offsets, at(end - 60)), Some((2, true)));
    }
}
