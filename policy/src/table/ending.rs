//! Time-bound entries: the networks of an account that end at a given
//! time, and what the table needs to drop them at that time by itself
//! (without a control plane), keeping everything else as it was.
//!
//! Only accounts with such entries carry an [`Ending`]; for the others the
//! table is exactly what it was before entries could end. Times are Unix
//! seconds; an entry ending at `t` is live before `t` and gone from `t` on.

use ipnet::IpNet;
use std::collections::BTreeMap;
use std::sync::Arc;

/// An account's networks when some of them end: the permanent ones, and
/// the ending ones soonest first (none already ended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    pub(super) permanent: Vec<IpNet>,
    pub(super) ending: Vec<(u64, IpNet)>,
}

impl Ending {
    /// Splits `nets` (all of an account's networks) by `ends` (those of
    /// them that end, with their time), leaving out what ended by `now`.
    /// `None` when nothing is left to end.
    pub(super) fn split(
        nets: &[IpNet],
        ends: &[(IpNet, u64)],
        now: u64,
    ) -> (Vec<IpNet>, Option<Ending>) {
        let end_of = |n: &IpNet| ends.iter().find(|(e, _)| e == n).map(|(_, t)| *t);
        let mut live = Vec::with_capacity(nets.len());
        let mut permanent = Vec::new();
        let mut ending = Vec::new();
        for n in nets {
            match end_of(n) {
                None => {
                    permanent.push(*n);
                    live.push(*n);
                }
                Some(t) if t > now => {
                    ending.push((t, *n));
                    live.push(*n);
                }
                Some(_) => {}
            }
        }
        ending.sort_unstable();
        if ending.is_empty() {
            return (live, None);
        }
        (live, Some(Ending { permanent, ending }))
    }

    /// When the next of these networks ends.
    pub fn next(&self) -> Option<u64> {
        self.ending.first().map(|(t, _)| *t)
    }

    /// How many of the networks end.
    pub fn len(&self) -> usize {
        self.ending.len()
    }

    /// Never true for a held `Ending` (an account with nothing left to end
    /// carries none).
    pub fn is_empty(&self) -> bool {
        self.ending.is_empty()
    }

    /// The networks live at `now`, and what is left to end after it.
    pub(super) fn at(&self, now: u64) -> (Vec<IpNet>, Option<Ending>) {
        let ending: Vec<(u64, IpNet)> = self
            .ending
            .iter()
            .filter(|(t, _)| *t > now)
            .copied()
            .collect();
        let mut live = self.permanent.clone();
        live.extend(ending.iter().map(|(_, n)| *n));
        if ending.is_empty() {
            return (live, None);
        }
        let rest = Ending {
            permanent: self.permanent.clone(),
            ending,
        };
        (live, Some(rest))
    }
}

/// The table's accounts with ending networks, by folded id.
#[derive(Debug, Clone, Default)]
pub(super) struct Endings {
    by_account: Arc<BTreeMap<String, Arc<Ending>>>,
    next: Option<u64>,
    count: usize,
}

impl Endings {
    /// What ends of many accounts at once (a table being built): the
    /// next end and the count are worked out once.
    pub(super) fn from_accounts(all: impl IntoIterator<Item = (String, Ending)>) -> Endings {
        let map: BTreeMap<String, Arc<Ending>> = all
            .into_iter()
            .map(|(id, e)| (id.to_ascii_lowercase(), Arc::new(e)))
            .collect();
        let mut e = Endings {
            by_account: Arc::new(map),
            next: None,
            count: 0,
        };
        e.recount();
        e
    }

    fn recount(&mut self) {
        self.next = self.by_account.values().filter_map(|e| e.next()).min();
        self.count = self.by_account.values().map(|e| e.len()).sum();
    }

    /// Sets (or, with `None`, clears) what of account `id` ends.
    pub(super) fn set(&mut self, id: &str, ending: Option<Ending>) {
        if ending.is_none() && self.by_account.is_empty() {
            return;
        }
        let key = id.to_ascii_lowercase();
        let had = self.by_account.contains_key(&key);
        if !had && ending.is_none() {
            return;
        }
        let map = Arc::make_mut(&mut self.by_account);
        match ending {
            Some(e) => {
                map.insert(key, Arc::new(e));
            }
            None => {
                map.remove(&key);
            }
        }
        self.recount();
    }

    /// The soonest time a network of any account ends.
    pub(super) fn next(&self) -> Option<u64> {
        self.next
    }

    /// Ending networks over all accounts.
    pub(super) fn count(&self) -> usize {
        self.count
    }

    /// The accounts (folded ids) with a network ending by `now`.
    pub(super) fn due(&self, now: u64) -> Vec<(String, Arc<Ending>)> {
        self.by_account
            .iter()
            .filter(|(_, e)| e.next().is_some_and(|t| t <= now))
            .map(|(id, e)| (id.clone(), e.clone()))
            .collect()
    }

    /// What of account `id` (any case) ends.
    pub(super) fn of(&self, id: &str) -> Option<&Ending> {
        self.by_account
            .get(&id.to_ascii_lowercase())
            .map(|e| e.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use crate::table::{AccountPolicy, LiveTable, Mode, Table};
    use ipnet::IpNet;
    use std::net::IpAddr;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn allows(t: &Table, account: &str, addr: &str) -> bool {
        t.account(account)
            .is_some_and(|a| a.allowed.contains(ip(addr)))
    }

    #[test]
    fn an_ending_network_leaves_at_its_time_and_the_rest_stays() {
        let nets = [
            net("203.0.113.10/32"),
            net("203.0.113.11/32"),
            net("198.51.100.0/24"),
        ];
        let ends = [(nets[0], 100), (nets[1], 200)];
        let t = Table::build(
            9,
            vec![
                (
                    "Acme".to_string(),
                    AccountPolicy::ending(Mode::Enforce, &nets, &ends, 50),
                ),
                (
                    "globex".to_string(),
                    AccountPolicy::new(Mode::Enforce, &[nets[2]]),
                ),
            ],
            &[],
        );
        assert_eq!(
            (t.entries(), t.expiring_entries(), t.next_expiry()),
            (4, 2, Some(100))
        );
        assert!(
            t.without_expired(99).is_none(),
            "nothing has ended before 100"
        );

        let t1 = t.without_expired(100).unwrap();
        assert_eq!(t1.version(), 9, "dropping what ended keeps the version");
        assert!(!allows(&t1, "acme", "203.0.113.10"));
        assert!(allows(&t1, "acme", "203.0.113.11"));
        assert!(
            allows(&t1, "acme", "198.51.100.7"),
            "the permanent entry stays"
        );
        assert!(allows(&t1, "globex", "198.51.100.7"));
        assert_eq!(
            (t1.entries(), t1.expiring_entries(), t1.next_expiry()),
            (3, 1, Some(200))
        );
        assert!(
            allows(&t, "acme", "203.0.113.10"),
            "the old table is unchanged"
        );

        let t2 = t1.without_expired(500).unwrap();
        assert!(!allows(&t2, "acme", "203.0.113.11"));
        assert!(allows(&t2, "acme", "198.51.100.7"));
        assert_eq!(
            (t2.entries(), t2.expiring_entries(), t2.next_expiry()),
            (2, 0, None)
        );
        assert!(t2.without_expired(u64::MAX).is_none());
    }

    #[test]
    fn what_ended_before_the_build_is_never_live() {
        let nets = [net("203.0.113.10/32")];
        let p = AccountPolicy::ending(Mode::Enforce, &nets, &[(nets[0], 100)], 100);
        let t = Table::build(1, vec![("acme".to_string(), p)], &[]);
        assert!(!allows(&t, "acme", "203.0.113.10"));
        assert_eq!(
            (t.entries(), t.expiring_entries(), t.next_expiry()),
            (0, 0, None)
        );
    }

    #[test]
    fn republishing_an_account_replaces_what_of_it_ends() {
        let nets = [net("203.0.113.10/32")];
        let t = Table::build(
            1,
            vec![(
                "acme".to_string(),
                AccountPolicy::ending(Mode::Enforce, &nets, &[(nets[0], 100)], 0),
            )],
            &[],
        );
        let t2 = t.with_account("ACME", Some(AccountPolicy::new(Mode::Enforce, &nets)));
        assert_eq!((t2.expiring_entries(), t2.next_expiry()), (0, None));
        assert!(t2.without_expired(1000).is_none(), "now permanent");
        let t3 = t.with_account("acme", None);
        assert_eq!((t3.expiring_entries(), t3.next_expiry()), (0, None));
    }

    #[test]
    fn the_live_table_drops_what_ended_in_place() {
        let nets = [net("203.0.113.10/32")];
        let live = LiveTable::new(Table::build(
            4,
            vec![(
                "acme".to_string(),
                AccountPolicy::ending(Mode::Enforce, &nets, &[(nets[0], 100)], 0),
            )],
            &[],
        ));
        assert!(!live.drop_expired(99));
        assert!(allows(&live.load(), "acme", "203.0.113.10"));
        assert!(live.drop_expired(100));
        assert!(!allows(&live.load(), "acme", "203.0.113.10"));
        assert_eq!(live.load().version(), 4);
        assert!(!live.drop_expired(101));
    }
}
