//! A request head as the decision reads it, whoever parsed it: Pingora's
//! `RequestHeader`, or the raw HTTP/1 path's borrowed view of the bytes
//! received (`ipgate_proxy::pingora_path::head` and `ipgate_proxy::raw_path`). Both
//! answer the same questions the same way.

/// What routing, account extraction and the client-IP walk read from a head.
pub trait Head {
    /// The request path as sent, without the query.
    fn path(&self) -> &str;
    fn query(&self) -> Option<&str>;
    /// The authority of an absolute-form request target.
    fn uri_host(&self) -> Option<&str>;
    /// The values of every header named `name` (any case), in order.
    fn values<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl DoubleEndedIterator<Item = &'a [u8]> + use<'a, 'n, Self>;
}

/// A header value as text, when it is all visible ASCII (or tabs), the rule
/// `http::HeaderValue::to_str` applies.
pub fn visible_text(v: &[u8]) -> Option<&str> {
    if v.iter().all(|&b| (0x20..0x7f).contains(&b) || b == b'\t') {
        std::str::from_utf8(v).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_text_follows_header_value_to_str() {
        for v in [
            &b"acme"[..],
            b"a\tb",
            b"",
            b"caf\xc3\xa9",
            b"a\x7fb",
            b"a\x01",
            b" x ",
        ] {
            let hv = http::HeaderValue::from_bytes(v).ok();
            let expected = hv.as_ref().and_then(|h| h.to_str().ok());
            assert_eq!(visible_text(v), expected, "{v:?}");
        }
    }
}
