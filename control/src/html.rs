//! Small HTML helpers shared by the portal, the link pages and the mails:
//! escaping (every value that came from a user or the store goes through
//! `esc`) and the page frame with its security headers.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1b1f23}\
h1{font-size:1.4rem}table{border-collapse:collapse;width:100%;margin:.5rem 0}\
td,th{border-bottom:1px solid #ddd;padding:.35rem .5rem;text-align:left;vertical-align:top}\
.box{border:1px solid #ccd;border-radius:6px;padding:.75rem 1rem;margin:1rem 0}\
.ok{background:#eefbea}.warn{background:#fff6e0}.bad{background:#fdecec}\
.cards{display:flex;gap:1rem;flex-wrap:wrap}.card{border:1px solid #ccd;border-radius:6px;padding:.5rem 1rem;min-width:9rem}\
.card b{display:block;font-size:1.5rem}button{padding:.5rem 1rem;margin-right:.5rem;cursor:pointer}\
input{padding:.3rem;margin:.2rem 0}label{display:block;margin-top:.4rem}.muted{color:#667}";

/// A whole page: title (escaped here) and body (already escaped HTML).
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{t}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        t = esc(title)
    )
}

/// An HTML response with the headers every ipgate page carries: no
/// caching, no referrer (link pages hold a secret in their URL), no
/// framing, no scripts.
pub fn respond(status: StatusCode, html: String) -> Response {
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    let set = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ];
    for (k, v) in set {
        h.insert(k, HeaderValue::from_static(v));
    }
    r
}

/// A two-column table of labelled values (used in pages and in mails,
/// hence the attributes for mail clients without CSS).
pub fn table(rows: &[(&str, String)]) -> String {
    let rows: String = rows
        .iter()
        .map(|(k, v)| {
            format!(
                "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
                esc(k),
                esc(v)
            )
        })
        .collect();
    format!("<table cellpadding=\"4\">{rows}</table>")
}

/// A page that only says something: a title and one boxed sentence.
pub fn message(status: StatusCode, title: &str, class: &str, text: &str) -> Response {
    respond(
        status,
        page(
            title,
            &format!(
                "<h1>{}</h1><div class=\"box {class}\"><p>{}</p></div>",
                esc(title),
                esc(text)
            ),
        ),
    )
}

/// The page for a step the store could not take (logged here).
pub fn unavailable(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "page: store failed");
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again later",
        "bad",
        "The service could not complete this step, so nothing was changed. Try again in a minute.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_values_is_escaped() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }
}
