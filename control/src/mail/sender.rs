//! The outbox sender: takes due jobs from the store's outbox, renders them
//! and hands them to the SMTP server through lettre. A failed attempt is
//! recorded and retried with backoff (1 s doubling to 60 s) until it goes;
//! nothing leaves the outbox unless the SMTP server accepted it, or refused
//! it for good (a 5xx, an address that is not one), which is recorded.

use crate::mail::compose::{self, MailContext, Rendered};
use crate::metrics::FlowMetrics;
use crate::store::{MailJob, Prepared, Store, StoreError};
use ipgate_config::SmtpConfig;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Why the mailer cannot be built from the config.
#[derive(Debug, thiserror::Error)]
pub enum MailConfigError {
    #[error(
        "config key smtp.from: `{0}` is not a mailbox (e.g. `Security <security@example.com>`)"
    )]
    From(String),
    #[error("config key smtp.url: {0}")]
    Url(String),
}

/// The sender and the transport settings of `[smtp]`, parsed once.
fn parse(smtp: &SmtpConfig) -> Result<(Mailbox, AsyncSmtpTransportBuilder), MailConfigError> {
    let from = smtp
        .from
        .parse::<Mailbox>()
        .map_err(|_| MailConfigError::From(smtp.from.clone()))?;
    let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&smtp.url)
        .map_err(|e| MailConfigError::Url(e.to_string()))?;
    Ok((from, builder))
}

/// Checks `[smtp]` without connecting anywhere.
pub fn check(smtp: &SmtpConfig) -> Result<(), MailConfigError> {
    parse(smtp).map(|_| ())
}

/// The user named in an SMTP URL (`smtp://user@host`), percent-decoded.
fn url_user(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    let user = userinfo.split(':').next()?;
    Some(
        percent_encoding::percent_decode_str(user)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

/// Sends the outbox.
/// How one send went.
enum Attempt {
    Sent,
    /// A 5xx: sending again cannot help.
    RefusedForGood(String),
    /// Anything else: retried later.
    Failed(String),
}

/// Longest one mail may take from connecting to the server's last answer.
const SEND_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    public_url: String,
    /// `control.contact`, for the mails that say "contact us".
    contact: String,
    metrics: FlowMetrics,
    /// Poked after a change queues mail, so it goes without waiting a tick.
    pub wake: Arc<Notify>,
}

impl Mailer {
    /// `password` (from `IPGATE_SMTP_PASSWORD` or `smtp.password_file`)
    /// replaces one given in the URL.
    pub fn new(
        smtp: &SmtpConfig,
        password: Option<String>,
        public_url: &str,
        contact: &str,
        metrics: FlowMetrics,
    ) -> Result<Mailer, MailConfigError> {
        let (from, builder) = parse(smtp)?;
        let mut builder = builder.timeout(Some(Duration::from_secs(10)));
        if let Some(password) = password {
            let user = url_user(&smtp.url).ok_or_else(|| {
                MailConfigError::Url(
                    "an SMTP password is set but the URL names no user (smtp://USER@host)".into(),
                )
            })?;
            builder = builder.credentials(Credentials::new(user, password));
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
            public_url: public_url.trim_end_matches('/').to_string(),
            contact: contact.to_string(),
            metrics,
            wake: Arc::new(Notify::new()),
        })
    }

    /// Sets the outbox gauge to the store's queue (left as it was when the
    /// store cannot say).
    async fn report_depth(&self, store: &Store) {
        match store.outbox_depth().await {
            Ok(n) => self.metrics.set_outbox_depth(n),
            Err(e) => tracing::warn!(error = %e, "cannot count the mail outbox"),
        }
    }

    /// Sends due mail until `shutdown` flips, waking every second or when poked.
    pub async fn run(&self, store: &Store, mut shutdown: watch::Receiver<bool>) {
        loop {
            // Before sending, so the gauge is right from the start (mail
            // left from before a restart) and while a batch goes out.
            self.report_depth(store).await;
            match store.due_mail().await {
                Ok(ids) => {
                    for id in ids {
                        if *shutdown.borrow() {
                            return;
                        }
                        if let Err(e) = self.send_one(store, id).await {
                            tracing::error!(mail = id, error = %e, "mail outbox step failed");
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot read the mail outbox"),
            }
            self.report_depth(store).await;
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    fn message(&self, job: &MailJob, r: &Rendered) -> Result<Message, String> {
        let to = job
            .to
            .parse::<Mailbox>()
            .map_err(|e| format!("`{}` is not a mail address: {e}", job.to))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&r.subject)
            .multipart(MultiPart::alternative_plain_html(
                r.text.clone(),
                r.html.clone(),
            ))
            .map_err(|e| e.to_string())
    }

    async fn send_one(&self, store: &Store, id: u64) -> Result<(), StoreError> {
        let prepared = store.prepare_mail(id).await?;
        let job = match &prepared {
            Prepared::Dropped | Prepared::Elsewhere => return Ok(()),
            Prepared::Link(l) => l.job.clone(),
            Prepared::Notice { job, .. } | Prepared::Reminder { job, .. } => job.clone(),
        };
        let name = store
            .account(job.account.as_str())
            .await?
            .map(|a| a.name)
            .unwrap_or_else(|| job.account.to_string());
        let ctx = MailContext {
            account_name: &name,
            from_address: self.from.email.as_ref(),
            contact: &self.contact,
        };
        let rendered = match prepared {
            Prepared::Link(l) => {
                let link = format!("{}/confirm/{}", self.public_url, l.token);
                compose::link_mail(&l.request, &link, &ctx)
            }
            Prepared::Notice {
                request,
                job,
                disown,
            } => {
                let link = disown.map(|t| format!("{}/not-me/{t}", self.public_url));
                match job.kind {
                    crate::store::MailKind::Disowned => {
                        super::disowned::disowned_mail(&request, &ctx)
                    }
                    _ => compose::notice_mail(&request, job.approval, link.as_deref(), &ctx),
                }
            }
            Prepared::Reminder { entry, .. } => {
                super::reminder::reminder_mail(&entry, &ctx, crate::domain::Timestamp::now())
            }
            Prepared::Dropped | Prepared::Elsewhere => return Ok(()),
        };
        let message = match self.message(&job, &rendered) {
            Ok(m) => m,
            Err(e) => {
                store.mail_dropped(&job, &e).await?;
                self.metrics.mail(job.kind.as_str(), false);
                tracing::error!(to = %job.to, request = %job.request, error = %e, "mail dropped: it can never be sent");
                return Ok(());
            }
        };
        // lettre's own timeout covers connecting, not a server that stalls
        // mid-dialogue: bound the whole send, or one stuck server holds
        // every mail behind it.
        let attempt = match tokio::time::timeout(SEND_TIMEOUT, self.transport.send(message)).await {
            Ok(Ok(_)) => Attempt::Sent,
            Ok(Err(e)) if e.is_permanent() => Attempt::RefusedForGood(e.to_string()),
            Ok(Err(e)) => Attempt::Failed(e.to_string()),
            Err(_) => Attempt::Failed(format!(
                "the SMTP server did not finish within {SEND_TIMEOUT:?}"
            )),
        };
        match attempt {
            Attempt::Sent => {
                store.mail_sent(&job).await?;
                self.metrics.mail(job.kind.as_str(), true);
                tracing::info!(to = %job.to, kind = job.kind.as_str(), request = %job.request, "mail sent");
            }
            Attempt::RefusedForGood(e) => {
                store
                    .mail_dropped(&job, &format!("refused for good: {e}"))
                    .await?;
                self.metrics.mail(job.kind.as_str(), false);
                tracing::error!(to = %job.to, kind = job.kind.as_str(), request = %job.request, error = %e, "mail dropped: the SMTP server refused it for good");
            }
            Attempt::Failed(e) => {
                let next = store.mail_failed(&job, &e).await?;
                self.metrics.mail(job.kind.as_str(), false);
                tracing::warn!(to = %job.to, kind = job.kind.as_str(), request = %job.request, attempt = job.attempts, error = %e, retry_at = next.next_attempt_at.unix(), "mail not sent; will retry");
            }
        }
        self.report_depth(store).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_comes_from_the_url() {
        assert_eq!(url_user("smtp://bob@mail:587").as_deref(), Some("bob"));
        assert_eq!(url_user("smtps://a%40b:pw@mail/?x").as_deref(), Some("a@b"));
        assert_eq!(url_user("smtp://mail:25"), None);
    }

    #[test]
    fn bad_smtp_settings_name_their_key() {
        let err = |c: SmtpConfig| check(&c).err().map(|e| e.to_string()).unwrap_or_default();
        let from = err(SmtpConfig {
            from: "not a mailbox".into(),
            ..SmtpConfig::default()
        });
        assert!(from.contains("smtp.from"), "{from}");
        let url = err(SmtpConfig {
            url: "smtp://[bad".into(),
            ..SmtpConfig::default()
        });
        assert!(url.contains("smtp.url"), "{url}");
        assert!(check(&SmtpConfig::default()).is_ok());
    }
}
