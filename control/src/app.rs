//! The control plane assembled from its config: the publisher over the
//! store, the admin API's and the portal listener's state, the mail sender
//! and the background jobs. The binary serves its routers on listeners;
//! tests drive the same routers in-process.

use crate::domain::flow::Limits;
use crate::http::admin::{self, AdminState, AdminToken};
use crate::http::state::CustomerState;
use crate::http::sync::{self, feed::FeedVersion, SyncFeed};
use crate::jobs::Jobs;
use crate::limits::login_limit::LoginLimit;
use crate::limits::ratelimit::RateLimit;
use crate::limits::refusals::Refusals;
use crate::mail::sender::{MailConfigError, Mailer};
use crate::metrics::FlowMetrics;
use crate::service::publish::Publisher;
use crate::store::{Store, StoreError};
use axum::Router;
use ipgate_config::Config;
use ipgate_policy::client_ip::TrustedProxies;
use ipgate_policy::LiveTable;
use prometheus::Registry;
use std::sync::Arc;
use std::time::Duration;

/// Visits to emailed links allowed per client IP and minute.
const LINK_VISITS_PER_MINUTE: u32 = 30;

/// Why the control plane could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("reading the CSRF key")]
    CsrfKey(#[source] StoreError),
    #[error("starting a new table generation in the store")]
    Generation(#[source] StoreError),
    #[error(
        "the sync token is too short: use at least {} characters",
        crate::http::admin::MIN_TOKEN_LEN
    )]
    SyncToken,
    #[error(transparent)]
    Mail(#[from] MailConfigError),
    #[error("registering the control plane's metrics")]
    Metrics(#[from] prometheus::Error),
}

/// The control plane's secrets, read by the caller (environment or files).
pub struct ControlSecrets {
    pub admin_token: AdminToken,
    pub smtp_password: Option<String>,
    /// The token proxies present to the sync feed; `None`: the feed is off.
    pub sync_token: Option<String>,
}

/// The control plane's parts, ready to serve.
pub struct ControlPlane {
    pub publisher: Arc<Publisher>,
    pub admin: AdminState,
    pub portal: CustomerState,
    pub jobs: Arc<Jobs>,
    pub mailer: Mailer,
    pub feed: Arc<SyncFeed>,
}

impl ControlPlane {
    /// Assembles the control plane over `store`, publishing into `table`
    /// (the proxy's live table when both halves run in one process) and
    /// registering its metrics in `registry`.
    pub async fn build(
        config: &Config,
        store: Store,
        table: Arc<LiveTable>,
        registry: &Registry,
        secrets: ControlSecrets,
    ) -> Result<ControlPlane, BuildError> {
        let ControlSecrets {
            admin_token,
            smtp_password,
            sync_token,
        } = secrets;
        let csrf_key = Arc::new(store.secret("csrf").await.map_err(BuildError::CsrfKey)?);
        let generation = store
            .next_generation()
            .await
            .map_err(BuildError::Generation)?;
        let sync_token = match sync_token.as_deref() {
            None => None,
            Some(t) => Some(AdminToken::new(t).ok_or(BuildError::SyncToken)?),
        };
        let publisher = Arc::new(Publisher::new(store, table));
        let metrics = FlowMetrics::register(registry)?;
        let mailer = Mailer::new(
            &config.smtp,
            smtp_password,
            &config.control.public_url,
            &config.control.contact,
            metrics.clone(),
        )?;
        let login_refusals = Arc::new(Refusals::default());
        let c = &config.control;
        let portal = CustomerState {
            publisher: publisher.clone(),
            limits: Limits {
                max_ips_per_request: c.max_ips_per_request,
                max_entries_per_account: c.max_entries_per_account,
                allow_private_ips: c.allow_private_ips,
            },
            link_ttl: c.link_ttl.0,
            trusted: TrustedProxies::new(
                config.proxy.trusted_proxies.iter().map(|n| n.0).collect(),
            ),
            metrics: metrics.clone(),
            mail_wake: mailer.wake.clone(),
            csrf_key,
            link_limit: Arc::new(RateLimit::new(
                LINK_VISITS_PER_MINUTE,
                Duration::from_secs(60),
            )),
            login_limit: Arc::new(LoginLimit::default()),
            login_refusals: login_refusals.clone(),
            secure_cookies: c.public_url.starts_with("https://"),
            contact: Arc::from(c.contact.as_str()),
            mail_from: Arc::from(config.smtp.from.as_str()),
        };
        let feed = Arc::new(SyncFeed::new(
            publisher.clone(),
            sync_token,
            FeedVersion::new(generation),
            config.sync.poll_timeout.0,
        ));
        let admin = AdminState {
            publisher: publisher.clone(),
            token: Arc::new(admin_token),
            feed: feed.clone(),
        };
        let jobs = Arc::new(Jobs {
            publisher: publisher.clone(),
            metrics,
            refusals: Some(login_refusals),
            reminders: crate::service::entry_ends::offsets(
                &config
                    .control
                    .expiry_reminders
                    .iter()
                    .map(|d| d.0)
                    .collect::<Vec<_>>(),
            ),
        });
        Ok(ControlPlane {
            publisher,
            admin,
            portal,
            jobs,
            mailer,
            feed,
        })
    }

    /// The admin listener's routes (`control.admin_listen`): the admin API
    /// behind the admin token, and the sync feed behind the sync token.
    pub fn admin_router(&self) -> Router {
        admin::router(self.admin.clone()).merge(sync::routes(self.feed.clone()))
    }

    /// The portal listener's routes (`control.listen`): customer API, link
    /// pages, portal.
    pub fn portal_router(&self) -> Router {
        crate::http::router(self.portal.clone())
    }
}

#[cfg(test)]
pub(crate) mod tests;
