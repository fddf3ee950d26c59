//! Bounded line reading: the SMTP session never holds more than a fixed
//! number of bytes of one client line in memory, whatever the client sends.

use std::io::{self, BufRead};

/// What one call to [`read_chunk`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// The client closed the connection (any unfinished line is dropped).
    Eof,
    /// A whole line, ending in `\n` (with or without `\r` before it).
    Line,
    /// `max` bytes without a newline: the line goes on.
    Partial,
}

/// Reads into `out` (cleared first) up to and including the next `\n`, but
/// no more than `max` bytes.
pub(crate) fn read_chunk<R: BufRead>(
    reader: &mut R,
    max: usize,
    out: &mut Vec<u8>,
) -> io::Result<Chunk> {
    out.clear();
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(Chunk::Eof);
        }
        let room = max.saturating_sub(out.len());
        let window = &buf[..buf.len().min(room)];
        if let Some(i) = window.iter().position(|&b| b == b'\n') {
            out.extend_from_slice(&window[..=i]);
            reader.consume(i + 1);
            return Ok(Chunk::Line);
        }
        let taken = window.len();
        out.extend_from_slice(window);
        reader.consume(taken);
        if out.len() >= max {
            return Ok(Chunk::Partial);
        }
    }
}

/// `line` without its trailing `\r\n` or bare `\n`.
pub(crate) fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn chunks(input: &[u8], max: usize) -> Vec<(Chunk, Vec<u8>)> {
        let mut reader = Cursor::new(input.to_vec());
        let mut out = Vec::new();
        let mut seen = Vec::new();
        loop {
            let chunk = read_chunk(&mut reader, max, &mut out).unwrap();
            seen.push((chunk, out.clone()));
            if chunk == Chunk::Eof {
                return seen;
            }
        }
    }

    #[test]
    fn splits_crlf_and_bare_lf_lines() {
        let seen = chunks(b"EHLO a\r\nNOOP\nQUIT\r\n", 100);
        assert_eq!(seen[0], (Chunk::Line, b"EHLO a\r\n".to_vec()));
        assert_eq!(seen[1], (Chunk::Line, b"NOOP\n".to_vec()));
        assert_eq!(seen[2], (Chunk::Line, b"QUIT\r\n".to_vec()));
        assert_eq!(seen[3].0, Chunk::Eof);
    }

    #[test]
    fn long_line_comes_in_bounded_pieces() {
        let seen = chunks(b"abcdefghij\n", 4);
        let kinds: Vec<Chunk> = seen.iter().map(|(c, _)| *c).collect();
        assert_eq!(
            kinds,
            [Chunk::Partial, Chunk::Partial, Chunk::Line, Chunk::Eof]
        );
        assert!(seen.iter().all(|(_, bytes)| bytes.len() <= 4));
    }

    #[test]
    fn unfinished_last_line_is_eof() {
        let seen = chunks(b"QUI", 100);
        assert_eq!(seen[0].0, Chunk::Eof);
    }

    #[test]
    fn trims_line_endings() {
        assert_eq!(trim_eol(b".\r\n"), b".");
        assert_eq!(trim_eol(b".\n"), b".");
        assert_eq!(trim_eol(b"."), b".");
    }
}
