//! The raw HTTP/1 path's own request reader (`h1::request::read`), on any
//! bytes and limits: never panics; a head it takes is inside the buffer,
//! within the limits, plainly framed, with an origin-form target of plain
//! bytes; it asks for more bytes only while the head may still fit; and
//! the head it writes upstream parses again as one request with the same
//! method and target.
#![no_main]

use ipgate_proxy::raw_path::request::{self, Read, MAX_BODY};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&limits, buf)) = data.split_first() else {
        return;
    };
    let max_bytes = 64 + usize::from(limits & 0x0f) * 512;
    let max_headers = 1 + usize::from(limits >> 4) * 4;
    let mut headers = request::headers();
    match request::read(buf, &mut headers, max_bytes, max_headers) {
        Read::Partial => assert!(buf.len() <= max_bytes, "more asked past the limit"),
        Read::Other(_) => {}
        Read::Ready(p) => {
            assert!(p.head_len <= buf.len() && p.head_len <= max_bytes);
            assert!(p.headers.len() <= max_headers);
            assert!(p.body_len <= MAX_BODY);
            assert!(p.target.starts_with('/'), "{:?}", p.target);
            assert!(request::plain_target(p.target));
            assert!(p.method != "CONNECT");
            let mut out = Vec::new();
            p.write_upstream_head(
                &mut out,
                p.target,
                None,
                b"up.test:80",
                b"203.0.113.9",
                false,
            );
            let mut again = [httparse::EMPTY_HEADER; 80];
            let mut req = httparse::Request::new(&mut again);
            match req.parse(&out) {
                Ok(httparse::Status::Complete(n)) => assert_eq!(n, out.len()),
                other => panic!("the upstream head does not parse: {other:?}"),
            }
            assert_eq!(req.method, Some(p.method));
            assert_eq!(req.path, Some(p.target));
            let hosts = req
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("host"))
                .count();
            assert_eq!(hosts, 1, "exactly one Host upstream");
            assert!(
                !req.headers
                    .iter()
                    .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding")),
                "no Transfer-Encoding upstream"
            );
        }
    }
});
