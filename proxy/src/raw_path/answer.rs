//! The upstream's answer on the raw HTTP/1 path: its head parsed with
//! httparse and passed on without hop-by-hop headers, and its body's end
//! found (by length, by chunks, or at close) so the connection can be
//! kept for the next request.

use super::request::decimal;
use crate::gate::respond::write_decimal;
use std::mem::MaybeUninit;

/// Response headers that concern one hop only: not passed on.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// Header lines an upstream answer may have.
const MAX_HEADERS: usize = 128;

/// Why an upstream answer cannot be passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadResponse {
    #[error("the upstream's answer is not valid HTTP/1")]
    Malformed,
    #[error("the upstream's answer is framed ambiguously")]
    Framing,
    #[error("the upstream switched protocols unasked")]
    Upgrade,
}

/// How the body of an answer ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Until the upstream closes: the client's connection closes too.
    UntilClose,
}

/// A parsed answer head.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head_len: usize,
    pub framing: Framing,
    /// The upstream connection can carry another request afterwards.
    pub reusable: bool,
}

/// Parses the answer head at the start of `buf`; `Ok(None)` when more
/// bytes are needed. `head_request`: the request was HEAD (no body follows).
/// The head to pass on is written to `out`, with `Connection: close` when
/// `close_client` or when the body runs until close.
pub fn read(
    buf: &[u8],
    head_request: bool,
    close_client: bool,
    out: &mut Vec<u8>,
) -> Result<Option<Answer>, BadResponse> {
    let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let head_len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut headers,
    ) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(BadResponse::Malformed),
    };
    let (Some(version), Some(status)) = (resp.version, resp.code) else {
        return Err(BadResponse::Malformed);
    };
    if status == 101 {
        return Err(BadResponse::Upgrade);
    }
    let mut length: Option<u64> = None;
    let mut chunked = None;
    let mut keep_alive = version == 1;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = decimal(h.value).ok_or(BadResponse::Framing)? as u64;
            if length.is_some_and(|l| l != n) {
                return Err(BadResponse::Framing);
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default();
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let t = token.trim_ascii();
                if t.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if t.eq_ignore_ascii_case(b"keep-alive") && version == 0 {
                    keep_alive = true;
                }
            }
        }
    }
    let framing = if head_request || (100..200).contains(&status) || status == 204 || status == 304
    {
        Framing::None
    } else {
        match (chunked, length) {
            (Some(true), None) => Framing::Chunked,
            // Both: a smuggling attempt or a broken upstream.
            (Some(_), Some(_)) => return Err(BadResponse::Framing),
            (Some(false), None) => Framing::UntilClose,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::UntilClose,
        }
    };
    let interim = (100..200).contains(&status);
    let close = !interim && (close_client || framing == Framing::UntilClose);

    out.extend_from_slice(b"HTTP/1.1 ");
    write_decimal(out, status.into());
    out.push(b' ');
    out.extend_from_slice(resp.reason.unwrap_or_default().as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in resp.headers.iter() {
        if HOP_BY_HOP
            .iter()
            .any(|hop| h.name.eq_ignore_ascii_case(hop))
        {
            continue;
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Some(Answer {
        status,
        head_len,
        framing,
        reusable: keep_alive && framing != Framing::UntilClose,
    }))
}

/// Follows a chunked body across reads to find where it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Chunks {
    /// Reading a chunk size (hex digits so far).
    #[default]
    SizeStart,
    Size(u64),
    /// After the size: extensions, up to the line end.
    SizeRest(u64),
    Data(u64),
    /// After a chunk's data: its line end.
    DataEnd {
        cr: bool,
    },
    /// After the last chunk: a trailer line starts (an empty one ends it).
    TrailerStart,
    Trailer,
    /// The final line end's `\r` was seen.
    EndLf,
    Done,
}

impl Chunks {
    /// Feeds bytes; `Ok(Some(n))` when the body ends after `n` of them.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<usize>, BadResponse> {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            *self = match *self {
                Chunks::SizeStart | Chunks::Size(_) => {
                    let so_far = match *self {
                        Chunks::Size(n) => Some(n),
                        _ => None,
                    };
                    match (char::from(b).to_digit(16), so_far) {
                        (Some(d), n) => {
                            let n = n.unwrap_or(0);
                            if n >> 56 != 0 {
                                return Err(BadResponse::Framing);
                            }
                            Chunks::Size(n * 16 + u64::from(d))
                        }
                        (None, Some(n)) if matches!(b, b';' | b' ' | b'\t' | b'\r') => {
                            Chunks::SizeRest(n)
                        }
                        (None, Some(n)) if b == b'\n' => Chunks::after_size(n),
                        _ => return Err(BadResponse::Framing),
                    }
                }
                Chunks::SizeRest(n) => match b {
                    b'\n' => Chunks::after_size(n),
                    _ => Chunks::SizeRest(n),
                },
                Chunks::Data(n) => {
                    let take = n.min((bytes.len() - i) as u64);
                    i += take as usize;
                    let left = n - take;
                    *self = if left == 0 {
                        Chunks::DataEnd { cr: false }
                    } else {
                        Chunks::Data(left)
                    };
                    continue;
                }
                Chunks::DataEnd { cr } => match b {
                    b'\r' if !cr => Chunks::DataEnd { cr: true },
                    b'\n' => Chunks::SizeStart,
                    _ => return Err(BadResponse::Framing),
                },
                Chunks::TrailerStart => match b {
                    b'\r' => Chunks::EndLf,
                    b'\n' => {
                        *self = Chunks::Done;
                        return Ok(Some(i + 1));
                    }
                    _ => Chunks::Trailer,
                },
                Chunks::Trailer => match b {
                    b'\n' => Chunks::TrailerStart,
                    _ => Chunks::Trailer,
                },
                Chunks::EndLf => match b {
                    b'\n' => {
                        *self = Chunks::Done;
                        return Ok(Some(i + 1));
                    }
                    _ => return Err(BadResponse::Framing),
                },
                Chunks::Done => return Ok(Some(i)),
            };
            i += 1;
        }
        Ok((*self == Chunks::Done).then_some(bytes.len()))
    }

    fn after_size(n: u64) -> Chunks {
        if n == 0 {
            Chunks::TrailerStart
        } else {
            Chunks::Data(n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(
        raw: &[u8],
        head: bool,
        close: bool,
    ) -> (Result<Option<Answer>, BadResponse>, String) {
        let mut out = Vec::new();
        let a = read(raw, head, close, &mut out);
        (a, String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn a_plain_answer_passes_without_hop_by_hop_headers() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-Id: 1\r\n\r\nhi";
        let (a, out) = answer(raw, false, false);
        let a = a.ok().flatten().unwrap_or_else(|| panic!("not parsed"));
        assert_eq!(a.framing, Framing::Length(2));
        assert_eq!(a.head_len, raw.len() - 2);
        assert!(a.reusable);
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Id: 1\r\n\r\n"
        );
    }

    #[test]
    fn framing_follows_the_status_and_headers() {
        let f = |raw: &[u8], head: bool| {
            answer(raw, head, false)
                .0
                .ok()
                .flatten()
                .map(|a| (a.framing, a.reusable))
        };
        assert_eq!(
            f(b"HTTP/1.1 204 No Content\r\n\r\n", false),
            Some((Framing::None, true))
        );
        assert_eq!(
            f(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true),
            Some((Framing::None, true))
        );
        assert_eq!(
            f(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                false
            ),
            Some((Framing::Chunked, true))
        );
        assert_eq!(
            f(b"HTTP/1.1 200 OK\r\n\r\n", false),
            Some((Framing::UntilClose, false))
        );
        assert_eq!(
            f(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n",
                false
            ),
            Some((Framing::Length(1), false))
        );
        assert_eq!(
            f(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false),
            Some((Framing::Length(1), false))
        );
        assert!(answer(b"HTTP/1.1 200 OK\r\nContent-Len", false, false)
            .0
            .is_ok_and(|a| a.is_none()));
    }

    #[test]
    fn ambiguous_or_broken_answers_are_refused() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
            b"HTTX/1.1 200 OK\r\n\r\n",
        ] {
            assert!(answer(raw, false, false).0.is_err(), "{raw:?}");
        }
    }

    #[test]
    fn a_closing_client_is_told_so() {
        let (_, out) = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, true);
        assert!(out.ends_with("Connection: close\r\n\r\n"), "{out}");
        let (_, out) = answer(b"HTTP/1.1 100 Continue\r\n\r\n", false, true);
        assert!(!out.contains("close"), "{out}");
    }

    #[test]
    fn chunked_bodies_end_where_they_end_in_any_split() {
        let body =
            b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let end = body.len() - 4;
        for split in 0..body.len() {
            let mut c = Chunks::default();
            let (a, b) = body.split_at(split);
            let got = match c.feed(a) {
                Ok(Some(n)) => n,
                Ok(None) => match c.feed(b) {
                    Ok(Some(n)) => split + n,
                    other => panic!("split {split}: {other:?}"),
                },
                Err(e) => panic!("split {split}: {e}"),
            };
            assert_eq!(got, end, "split {split}");
        }
        let mut c = Chunks::default();
        assert_eq!(c.feed(b"0\r\n\r\n"), Ok(Some(5)));
        let mut c = Chunks::default();
        assert_eq!(c.feed(b"0\n\n"), Ok(Some(3)));
    }

    #[test]
    fn broken_chunks_are_refused() {
        for raw in [
            &b"x\r\n"[..],
            b"5\r\nhelloX\r\n",
            b"\r\n",
            b"fffffffffffffffff\r\n",
        ] {
            let mut c = Chunks::default();
            assert!(c.feed(raw).is_err(), "{raw:?}");
        }
    }
}
