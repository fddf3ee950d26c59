//! The sync feed: how proxies that run apart from the control plane get
//! its table. `GET /sync/v1/snapshot?after=VERSION` on the admin listener,
//! with the sync token (which can do nothing else), is a long poll: it
//! answers at once with the whole table as an encoded snapshot when the
//! table is newer than `VERSION`, else 304 after `sync.poll_timeout`.
//! Versions only grow, across restarts too ([`feed::FeedVersion`]). Each
//! poll also tells the control plane which version that proxy holds
//! ([`proxies`]), listed at `GET /admin/v1/proxies`. Proxies report the
//! calls they denied with `POST /sync/v1/blocked-calls` ([`blocked`]).

pub mod blocked;
pub mod feed;
pub mod proxies;

pub use feed::{routes, SyncFeed};
pub use proxies::SeenProxies;
