//! What the portal listener's handlers share: the publisher, the flow's
//! limits, the metrics, the mail sender's wake-up, the CSRF key and the
//! rate limiters.

use crate::domain::flow::Limits;
use crate::limits::login_limit::LoginLimit;
use crate::limits::ratelimit::RateLimit;
use crate::limits::refusals::Refusals;
use crate::metrics::FlowMetrics;
use crate::service::publish::Publisher;
use crate::service::requests::Requests;
use ipgate_policy::client_ip::TrustedProxies;
use std::sync::Arc;
use std::time::Duration;

/// Everything the portal listener's handlers share (customer API, link
/// pages, portal pages).
#[derive(Clone)]
pub struct CustomerState {
    pub publisher: Arc<Publisher>,
    pub limits: Limits,
    pub link_ttl: Duration,
    pub trusted: TrustedProxies,
    pub metrics: FlowMetrics,
    /// Wakes the mail sender after a change queued mail.
    pub mail_wake: Arc<tokio::sync::Notify>,
    /// Key of the CSRF values on link pages and portal forms.
    pub csrf_key: Arc<[u8; 32]>,
    /// Visits to emailed links, per client IP.
    pub link_limit: Arc<RateLimit>,
    /// Login attempts, per client, and per username from one client.
    pub login_limit: Arc<LoginLimit>,
    /// Which refused logins are recorded one by one, and their summaries.
    pub login_refusals: Arc<Refusals>,
    /// Cookies get `Secure` (public_url is https).
    pub secure_cookies: bool,
    /// `control.contact`: how to reach the operator.
    pub contact: Arc<str>,
    /// `smtp.from`: the sender of every mail, for the address book.
    pub mail_from: Arc<str>,
}

impl CustomerState {
    /// The request use cases (submit, cancel, decide), over this state's
    /// publisher, limits, metrics and mail sender.
    pub fn requests(&self) -> Requests<'_> {
        Requests {
            publisher: &self.publisher,
            limits: &self.limits,
            link_ttl: self.link_ttl,
            metrics: &self.metrics,
            mail_wake: &self.mail_wake,
        }
    }
}
