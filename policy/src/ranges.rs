//! A set of IP networks as sorted, merged, non-overlapping ranges: the shape
//! that makes "is this address inside any entry" one binary search with no
//! allocation, whether the entries are single addresses or CIDRs.

use ipnet::IpNet;
use smallvec::SmallVec;
use std::net::IpAddr;

/// Sorted disjoint inclusive ranges, IPv4 and IPv6 kept apart. Three IPv4
/// ranges and one IPv6 range live inline, so the common account (a handful
/// of entries, often merged into fewer ranges) is matched without following
/// another pointer. `repr(C)` keeps the IPv4 part first (see the table's
/// record layout).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[repr(C)]
pub struct RangeSet {
    v4: SmallVec<[(u32, u32); 3]>,
    v6: SmallVec<[(u128, u128); 1]>,
}

impl RangeSet {
    /// Builds the set from networks in any order, merging overlaps and neighbours.
    pub fn from_nets<'a>(nets: impl IntoIterator<Item = &'a IpNet>) -> RangeSet {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in nets {
            match net {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
            }
        }
        RangeSet {
            v4: merge(v4).into_iter().collect(),
            v6: merge(v6).into_iter().collect(),
        }
    }

    /// Whether `ip` lies inside any range. The caller passes a canonical
    /// address (IPv4-mapped IPv6 already folded).
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => find(&self.v4, u32::from(a)),
            IpAddr::V6(a) => find(&self.v6, u128::from(a)),
        }
    }

    /// Number of merged ranges (not entries).
    pub fn ranges(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
}

#[inline]
fn find<T: Ord + Copy>(ranges: &[(T, T)], x: T) -> bool {
    // First range whose start is > x; the candidate is the one before it.
    let idx = ranges.partition_point(|&(start, _)| start <= x);
    idx > 0 && ranges[idx - 1].1 >= x
}

fn merge<T: Ord + Copy + Successor>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match out.last_mut() {
            Some(last) if last.1 >= start || last.1.succ() == Some(start) => {
                if end > last.1 {
                    last.1 = end;
                }
            }
            _ => out.push((start, end)),
        }
    }
    out.shrink_to_fit();
    out
}

trait Successor: Sized {
    fn succ(self) -> Option<Self>;
}
impl Successor for u32 {
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
}
impl Successor for u128 {
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap_or_else(|_| panic!("bad test net {s}"))
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| panic!("bad test ip {s}"))
    }

    #[test]
    fn exact_and_cidr_entries() {
        let set = RangeSet::from_nets(&[
            net("203.0.113.10/32"),
            net("198.51.100.0/24"),
            net("2001:db8::/64"),
        ]);
        assert!(set.contains(ip("203.0.113.10")));
        assert!(!set.contains(ip("203.0.113.11")));
        assert!(set.contains(ip("198.51.100.255")));
        assert!(!set.contains(ip("198.51.101.0")));
        assert!(set.contains(ip("2001:db8::ffff")));
        assert!(!set.contains(ip("2001:db8:0:1::")));
    }

    #[test]
    fn neighbours_and_overlaps_merge() {
        let set = RangeSet::from_nets(&[
            net("10.0.0.0/25"),
            net("10.0.0.128/25"),
            net("10.0.0.5/32"),
            net("0.0.0.0/0"),
        ]);
        assert_eq!(set.ranges(), 1);
        assert!(set.contains(ip("255.255.255.255")));
    }

    fn arb_net() -> impl Strategy<Value = IpNet> {
        prop_oneof![
            (any::<u32>(), 0u8..=32).prop_map(|(a, p)| IpNet::new(
                IpAddr::from(a.to_be_bytes()),
                p
            )
            .map(|n| n.trunc())),
            (any::<u128>(), 0u8..=128).prop_map(|(a, p)| IpNet::new(
                IpAddr::from(a.to_be_bytes()),
                p
            )
            .map(|n| n.trunc())),
            // small v4 space so hits are common
            (0u32..64, 26u8..=32).prop_map(|(a, p)| IpNet::new(
                IpAddr::from((0x0a00_0000 + a).to_be_bytes()),
                p
            )
            .map(|n| n.trunc())),
        ]
        .prop_filter_map("valid", |n| n.ok())
    }

    fn arb_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<u32>().prop_map(|a| IpAddr::from(a.to_be_bytes())),
            any::<u128>().prop_map(|a| IpAddr::from(a.to_be_bytes())),
            (0u32..128).prop_map(|a| IpAddr::from((0x0a00_0000 + a).to_be_bytes())),
        ]
    }

    proptest! {
        #[test]
        fn agrees_with_a_naive_list(nets in proptest::collection::vec(arb_net(), 0..40),
                                    queries in proptest::collection::vec(arb_ip(), 1..60)) {
            let set = RangeSet::from_nets(&nets);
            for q in queries {
                let naive = nets.iter().any(|n| n.contains(&q));
                prop_assert_eq!(set.contains(q), naive, "query {}", q);
            }
        }
    }
}
