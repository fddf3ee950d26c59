//! Small HTML helpers shared by the portal, the link pages and the mails:
//! the page frame with its security headers, the labelled-values table and
//! the one-sentence page. Pages are `maud` templates, which escape every
//! value put into them unless it is marked `PreEscaped` (here only fixed
//! text: the doctype, the style sheet, entities such as `&middot;`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, PreEscaped};

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1b1f23}\
h1{font-size:1.4rem}table{border-collapse:collapse;width:100%;margin:.5rem 0}\
td,th{border-bottom:1px solid #ddd;padding:.35rem .5rem;text-align:left;vertical-align:top}\
.box{border:1px solid #ccd;border-radius:6px;padding:.75rem 1rem;margin:1rem 0}\
.ok{background:#eefbea}.warn{background:#fff6e0}.bad{background:#fdecec}\
.cards{display:flex;gap:1rem;flex-wrap:wrap}.card{border:1px solid #ccd;border-radius:6px;padding:.5rem 1rem;min-width:9rem}\
.card b{display:block;font-size:1.5rem}button{padding:.5rem 1rem;margin-right:.5rem;cursor:pointer}\
a.button{display:inline-block;padding:.3rem .7rem;border:1px solid #1a56db;border-radius:4px;color:#1a56db;text-decoration:none;white-space:nowrap}\
input{padding:.3rem;margin:.2rem 0}label{display:block;margin-top:.4rem}.muted{color:#667}\
.tabs{display:flex;gap:.25rem;border-bottom:1px solid #ccd;margin:1rem 0}\
.tabs a{padding:.4rem .9rem;text-decoration:none;color:#1b1f23;border:1px solid transparent;border-bottom:none;border-radius:6px 6px 0 0}\
.tabs a[aria-current]{border-color:#ccd;background:#f4f6fa;font-weight:600}\
code{word-break:break-all;font-size:.85rem}.nowrap{white-space:nowrap}\
.steps{display:flex;gap:.5rem;flex-wrap:wrap;list-style:none;padding:0;margin:1rem 0;counter-reset:step}\
.steps li{flex:1;min-width:9rem;border:1px solid #ccd;border-radius:6px;padding:.5rem .75rem;counter-increment:step}\
.steps li::before{content:counter(step);display:inline-block;width:1.4rem;height:1.4rem;border-radius:50%;background:#1a56db;color:#fff;text-align:center;margin-right:.4rem;font-weight:600}";

/// A whole page: title and body (markup, so already escaped).
pub fn page(title: &str, body: Markup) -> Markup {
    html! {
        (PreEscaped("<!doctype html>"))
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    }
}

/// An HTML response with the headers every ipgate page carries: no
/// caching, no referrer (link pages hold a secret in their URL), no
/// framing, no scripts.
pub fn respond(status: StatusCode, html: Markup) -> Response {
    let mut r = (status, html.into_string()).into_response();
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
pub fn table(rows: &[(&str, String)]) -> Markup {
    html! {
        table cellpadding="4" {
            @for (k, v) in rows {
                tr { th align="left" { (k) } td { (v) } }
            }
        }
    }
}

/// A page that only says something: a title and one boxed sentence.
pub fn message(status: StatusCode, title: &str, class: &str, text: &str) -> Response {
    respond(
        status,
        page(
            title,
            html! {
                h1 { (title) }
                div class={ "box " (class) } { p { (text) } }
            },
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
        let v = r#"<script>alert("x")</script> & 'y'"#;
        assert_eq!(
            html! { p title=(v) { (v) } }.into_string(),
            "<p title=\"&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; 'y'\">\
&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; 'y'</p>"
        );
    }

    #[test]
    fn the_frame_and_table_are_as_before() {
        let p = page("a<b", table(&[("k&", "v\"".to_string())])).into_string();
        assert!(p.starts_with("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>a&lt;b</title><style>body{"));
        assert!(p.ends_with("</style></head><body><table cellpadding=\"4\"><tr><th align=\"left\">k&amp;</th><td>v&quot;</td></tr></table></body></html>"));
    }
}
