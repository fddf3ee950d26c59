//! "This wasn't me" (`store::disown`): the report, through the publisher
//! so the entries it removes leave the proxy table before it answers.

use crate::domain::model::WhitelistEntry;
use crate::service::publish::Publisher;
use crate::store::{IpRequest, StoreError};
use std::net::IpAddr;

/// Undoes the approval behind the "this wasn't me" link `hash`, from `ip`.
pub async fn report(
    publisher: &Publisher,
    mail_wake: &tokio::sync::Notify,
    hash: &str,
    ip: IpAddr,
    user_agent: &str,
) -> Result<(IpRequest, Vec<WhitelistEntry>), StoreError> {
    let (hash, ua) = (hash.to_string(), user_agent.to_string());
    let done = publisher
        .change(|st| async move { st.disown(&hash, ip, &ua).await })
        .await?;
    mail_wake.notify_one();
    let (r, removed) = &done;
    tracing::warn!(account = %r.account, request = %r.id, by = ?r.disowned.as_ref().map(|d| &d.email), %ip, removed = removed.len(), "an approval was reported as not theirs: undone, account frozen");
    Ok(done)
}
