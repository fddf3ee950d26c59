//! Where a request head ends, found across reads in one pass over the
//! bytes: the head deadline stops its clock there, and the raw path parses
//! a head only once it is all in.
//!
//! Blank lines before the request line are skipped, as HTTP/1 parsers do
//! (RFC 9112 section 2.2): they neither start nor end a head, so a caller
//! sending `\r\n\r\n` first has not finished anything.

/// The state of the search: the last bytes seen of the current head.
#[derive(Debug, Default, Clone, Copy)]
pub struct HeadEnd {
    /// The last four bytes of the head so far, oldest in the high byte.
    window: u32,
    /// A byte other than CR or LF has been seen: the head has begun.
    started: bool,
}

impl HeadEnd {
    /// Feeds the next bytes; `Some(n)` when the head ends with `bytes[n - 1]`.
    /// Only the line ends are looked at (memchr), not every byte.
    pub fn feed(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut from = 0;
        if !self.started {
            from = bytes.iter().position(|&b| b != b'\r' && b != b'\n')?;
            self.started = true;
            self.window = 0;
        }
        let rest = &bytes[from..];
        for i in memchr::memchr_iter(b'\n', rest) {
            // The four bytes ending at this `\n`, borrowing from earlier reads.
            let window = match rest.get(i.wrapping_sub(3)..=i) {
                Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
                _ => rest[..=i]
                    .iter()
                    .fold(self.window, |w, &b| (w << 8) | u32::from(b)),
            };
            // A line end followed by an empty line: `\n\r\n` or `\n\n`.
            if window & 0x00ff_ffff == 0x000a_0d0a || window & 0xffff == 0x0a0a {
                *self = HeadEnd::default();
                return Some(from + i + 1);
            }
        }
        self.window = rest[rest.len().saturating_sub(4)..]
            .iter()
            .fold(self.window, |w, &b| (w << 8) | u32::from(b));
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_is_found_across_reads() {
        let mut h = HeadEnd::default();
        assert_eq!(h.feed(b"GET / HTTP/1.1\r\nHost: a\r"), None);
        assert_eq!(h.feed(b"\n\r"), None);
        assert_eq!(h.feed(b"\nbody"), Some(1));
        let mut h = HeadEnd::default();
        assert_eq!(h.feed(b"GET / HTTP/1.1\nHost: a\n\n"), Some(24));
        let mut h = HeadEnd::default();
        assert_eq!(h.feed(b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
        // The blank line split one byte at a time.
        let mut h = HeadEnd::default();
        assert_eq!(h.feed(b"GET / HTTP/1.1\r\nHost: a"), None);
        for b in [&b"\r"[..], b"\n", b"\r"] {
            assert_eq!(h.feed(b), None);
        }
        assert_eq!(h.feed(b"\n"), Some(1));
        // A line ended by a bare LF, then CRLF.
        let mut h = HeadEnd::default();
        assert_eq!(h.feed(b"GET / HTTP/1.1\r\nX: a\n\r\nrest"), Some(23));
        // A lone \n inside a line is no head end.
        let mut h = HeadEnd::default();
        assert_eq!(h.feed(b"GET / HTTP/1.1\r\nX: a\nb\r\n"), None);
    }

    #[test]
    fn blank_lines_before_the_request_line_are_skipped() {
        let mut h = HeadEnd::default();
        assert_eq!(h.feed(b"\r\n\r\n"), None);
        assert_eq!(h.feed(b"\n\n\r\n"), None);
        assert_eq!(h.feed(b"G"), None);
        assert_eq!(h.feed(b"ET / HTTP/1.1\r\n\r\n"), Some(17));
        let mut h = HeadEnd::default();
        let head = b"\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        assert_eq!(h.feed(head), Some(head.len()));
    }

    #[test]
    fn after_an_end_the_next_head_starts_over() {
        let mut h = HeadEnd::default();
        let two = b"GET / HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
        let first = h.feed(two).unwrap_or(0);
        assert_eq!(first, 18);
        assert_eq!(h.feed(&two[first..]), Some(two.len() - first));
    }
}
