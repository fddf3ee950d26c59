//! Why the raw HTTP/1 path hands a connection to Pingora's path. The raw path
//! serves plain HTTP/1.1 requests itself; anything else goes to Pingora's
//! path, which answers it as it always did (431 for large heads, 400 for
//! refused paths, chunked bodies, upgrades, TLS upstreams). Each handoff is
//! counted in `ipgate_proxy_handoffs_total{reason}` with one of these
//! reasons, so an operator sees which path serves the traffic and why.

/// One reason for a handoff; `label` is the metric's `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handoff {
    /// The connection negotiated HTTP/2 (ALPN `h2`).
    Http2,
    /// The head is not one httparse takes as HTTP/1.1.
    Unparsed,
    /// The head is over `proxy.max_header_bytes` or `proxy.max_headers`.
    HeadTooLarge,
    /// The connection ended or timed out with a head cut short.
    HeadCutShort,
    /// `CONNECT`, or a target that is not a plain origin-form path.
    Target,
    /// Several or odd `Content-Length`s, or a body larger than the raw
    /// path buffers.
    BodyLength,
    /// `Transfer-Encoding` (chunked bodies).
    TransferEncoding,
    /// `Upgrade`, `Expect` or `HTTP2-Settings`.
    Upgrade,
    /// A `Connection` option other than `close` or `keep-alive`.
    ConnectionOption,
    /// More than one `Host`.
    DuplicateHost,
    /// No TCP peer address to judge.
    NoPeer,
    /// The path is refused (Pingora's path answers 400).
    Path,
    /// No route for the host and path.
    NoRoute,
    /// The route's upstream is TLS.
    TlsUpstream,
    /// The rewritten target holds a byte unfit for a request line.
    RewrittenTarget,
}

impl Handoff {
    pub const ALL: [Handoff; 15] = [
        Handoff::Http2,
        Handoff::Unparsed,
        Handoff::HeadTooLarge,
        Handoff::HeadCutShort,
        Handoff::Target,
        Handoff::BodyLength,
        Handoff::TransferEncoding,
        Handoff::Upgrade,
        Handoff::ConnectionOption,
        Handoff::DuplicateHost,
        Handoff::NoPeer,
        Handoff::Path,
        Handoff::NoRoute,
        Handoff::TlsUpstream,
        Handoff::RewrittenTarget,
    ];

    /// Its place in [`Handoff::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn label(self) -> &'static str {
        match self {
            Handoff::Http2 => "http2",
            Handoff::Unparsed => "unparsed",
            Handoff::HeadTooLarge => "head_too_large",
            Handoff::HeadCutShort => "head_cut_short",
            Handoff::Target => "target",
            Handoff::BodyLength => "body_length",
            Handoff::TransferEncoding => "transfer_encoding",
            Handoff::Upgrade => "upgrade",
            Handoff::ConnectionOption => "connection_option",
            Handoff::DuplicateHost => "duplicate_host",
            Handoff::NoPeer => "no_peer",
            Handoff::Path => "path",
            Handoff::NoRoute => "no_route",
            Handoff::TlsUpstream => "tls_upstream",
            Handoff::RewrittenTarget => "rewritten_target",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_label() {
        let mut labels: Vec<_> = Handoff::ALL.iter().map(|h| h.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Handoff::ALL.len());
    }

    #[test]
    fn each_reason_is_at_its_index_in_all() {
        for (i, h) in Handoff::ALL.iter().enumerate() {
            assert_eq!(h.index(), i, "{h:?}");
        }
    }
}
