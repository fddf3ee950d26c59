//! A received message: its envelope, the headers people look at, and the
//! decoded text and HTML bodies, read with `mailparse`.

use std::time::SystemTime;

use mailparse::{DispositionType, MailHeaderMap, ParsedMail};

/// One message as the catcher received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Order of arrival, from 1; also the id in the `250 queued as` reply.
    pub id: u64,
    /// Envelope sender (`MAIL FROM`), empty for the null sender `<>`.
    pub from: String,
    /// Envelope recipients (`RCPT TO`), in the order given.
    pub to: Vec<String>,
    /// `Subject:` header, RFC 2047 encoded words decoded; empty if absent.
    pub subject: String,
    /// `From:` header, decoded; empty if absent.
    pub header_from: String,
    /// `To:` header, decoded; empty if absent.
    pub header_to: String,
    /// First `text/plain` part that is not an attachment, transfer encoding
    /// and charset decoded, line endings as `\n`.
    pub text: Option<String>,
    /// First `text/html` part that is not an attachment, decoded likewise.
    pub html: Option<String>,
    /// The message as received, after dot-unstuffing (lossy UTF-8).
    pub raw: String,
    /// When the message's final `.` was read.
    pub received_at: SystemTime,
}

impl Mail {
    /// Builds a `Mail` from the envelope and the raw message. A message
    /// that `mailparse` cannot read keeps its envelope and `raw`, with
    /// empty headers and no bodies.
    pub(crate) fn parse(
        id: u64,
        from: String,
        to: Vec<String>,
        raw: &[u8],
        received_at: SystemTime,
    ) -> Mail {
        let mut mail = Mail {
            id,
            from,
            to,
            subject: String::new(),
            header_from: String::new(),
            header_to: String::new(),
            text: None,
            html: None,
            raw: String::from_utf8_lossy(raw).into_owned(),
            received_at,
        };
        match mailparse::parse_mail(raw) {
            Ok(parsed) => {
                let header = |name: &str| parsed.headers.get_first_value(name).unwrap_or_default();
                mail.subject = header("Subject");
                mail.header_from = header("From");
                mail.header_to = header("To");
                collect_bodies(&parsed, &mut mail.text, &mut mail.html);
            }
            Err(e) => tracing::debug!(id, error = %e, "devmail: could not parse message"),
        }
        mail
    }

    /// Every `http://` or `https://` URL in the text part (or, if there is
    /// none, the HTML part), in order. A URL ends at whitespace, `<`, `>`,
    /// `"` or `)`; trailing sentence punctuation (`.,;:!?'`) is dropped, and
    /// in HTML `&amp;` is read as `&`.
    pub fn links(&self) -> Vec<String> {
        match (&self.text, &self.html) {
            (Some(text), _) => find_links(text),
            (None, Some(html)) => find_links(html)
                .into_iter()
                .map(|link| link.replace("&amp;", "&"))
                .collect(),
            (None, None) => Vec::new(),
        }
    }
}

/// Walks the MIME tree depth first, keeping the first text and HTML leaf.
fn collect_bodies(part: &ParsedMail<'_>, text: &mut Option<String>, html: &mut Option<String>) {
    if !part.subparts.is_empty() {
        for sub in &part.subparts {
            collect_bodies(sub, text, html);
        }
        return;
    }
    if part.get_content_disposition().disposition == DispositionType::Attachment {
        return;
    }
    let slot = match part.ctype.mimetype.as_str() {
        "text/plain" => text,
        "text/html" => html,
        _ => return,
    };
    if slot.is_some() {
        return;
    }
    match part.get_body() {
        Ok(body) => *slot = Some(body.replace("\r\n", "\n")),
        Err(e) => tracing::debug!(error = %e, "devmail: could not decode a body part"),
    }
}

fn find_links(body: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("http") {
        let candidate = &rest[start..];
        if !(candidate.starts_with("http://") || candidate.starts_with("https://")) {
            rest = &candidate["http".len()..];
            continue;
        }
        let end = candidate
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | ')'))
            .unwrap_or(candidate.len());
        let link = candidate[..end].trim_end_matches(['.', ',', ';', ':', '!', '?', '\'']);
        if !link.ends_with("//") {
            links.push(link.to_string());
        }
        rest = &candidate[end..];
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Mail {
        Mail::parse(
            7,
            "a@x".into(),
            vec!["b@y".into()],
            raw.as_bytes(),
            SystemTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn nested_multipart_with_quoted_printable_and_base64() {
        let raw = "From: =?utf-8?q?Gr=C3=BC=C3=9Fe?= <noreply@ipgate.example>\r\n\
            To: user@example.com\r\n\
            Subject: =?utf-8?b?QmVzdMOkdGlnZW4=?=\r\n\
            MIME-Version: 1.0\r\n\
            Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n\
            --outer\r\n\
            Content-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n\
            --inner\r\n\
            Content-Type: text/plain; charset=utf-8\r\n\
            Content-Transfer-Encoding: quoted-printable\r\n\r\n\
            Gr=C3=BC=C3=9Fe, open https://portal.example/c/AAAA=\r\nBBBB.\r\n\
            --inner\r\n\
            Content-Type: text/html; charset=utf-8\r\n\
            Content-Transfer-Encoding: base64\r\n\r\n\
            PGEgaHJlZj0iaHR0cHM6Ly9wb3J0YWwuZXhhbXBsZS9jL0FBQUFCQkJCIj5vcGVuPC9hPg==\r\n\
            --inner--\r\n\
            --outer\r\n\
            Content-Type: text/plain\r\n\
            Content-Disposition: attachment; filename=\"a.txt\"\r\n\r\n\
            not the body http://attached.example/\r\n\
            --outer--\r\n";
        let mail = parse(raw);
        assert_eq!(mail.subject, "Bestätigen");
        assert_eq!(mail.header_from, "Grüße <noreply@ipgate.example>");
        assert_eq!(mail.header_to, "user@example.com");
        assert_eq!(
            mail.text.as_deref(),
            Some("Grüße, open https://portal.example/c/AAAABBBB.")
        );
        assert_eq!(
            mail.html.as_deref(),
            Some("<a href=\"https://portal.example/c/AAAABBBB\">open</a>")
        );
        assert_eq!(mail.links(), ["https://portal.example/c/AAAABBBB"]);
        assert_eq!(
            (mail.id, mail.from.as_str(), mail.to.as_slice()),
            (7, "a@x", &["b@y".to_string()][..])
        );
    }

    #[test]
    fn plain_message_without_mime_headers_is_text() {
        let mail =
            parse("Subject: hi\r\n\r\nsee (http://a.example/x) and <https://b.example/y?q=1>\r\n");
        assert_eq!(mail.subject, "hi");
        assert_eq!(mail.html, None);
        assert_eq!(
            mail.links(),
            ["http://a.example/x", "https://b.example/y?q=1"]
        );
    }

    #[test]
    fn html_only_links_unescape_ampersands() {
        let mail = parse(
            "Content-Type: text/html\r\n\r\n<a href=\"https://a.example/?x=1&amp;y=2\">go</a> httpx https://\r\n",
        );
        assert_eq!(mail.text, None);
        assert_eq!(mail.links(), ["https://a.example/?x=1&y=2"]);
    }

    #[test]
    fn garbage_keeps_envelope_and_raw() {
        let mail = parse("\u{0}\u{1} no headers at all");
        assert_eq!(mail.from, "a@x");
        assert_eq!(mail.raw, "\u{0}\u{1} no headers at all");
    }
}
