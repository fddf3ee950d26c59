//! One SMTP session (an RFC 5321 subset, plain text, no TLS): enough for
//! lettre's plain `builder_dangerous` transport and for hand-written tests.
//!
//! The session knows nothing of sockets or threads: it reads lines from a
//! `BufRead`, writes replies to a `Write`, and hands each finished message
//! to a [`Mailroom`]. Every client mistake gets an SMTP error reply; only
//! I/O errors (closed socket, read timeout) end the session early.

use std::io::{self, BufRead, Write};

use crate::lines::{read_chunk, trim_eol, Chunk};
use crate::Mode;

/// Largest message accepted, in bytes (also advertised as `SIZE`).
pub(crate) const MAX_MESSAGE: usize = 10 * 1024 * 1024;
/// Largest command line, in bytes, line ending included.
const MAX_COMMAND: usize = 4096;
/// Bytes of a DATA line held at once; longer lines are read in pieces.
const DATA_CHUNK: usize = 64 * 1024;
/// Recipients of one message.
const MAX_RECIPIENTS: usize = 1000;
/// Client errors tolerated in one session before it is closed with 421.
const MAX_ERRORS: usize = 20;

/// Where a session sends what it received, and asks how to behave.
pub(crate) trait Mailroom {
    /// The catcher's mode now (read at each `MAIL FROM`).
    fn mode(&self) -> Mode;
    /// Stores one message; returns its id.
    fn deliver(&self, from: String, to: Vec<String>, raw: Vec<u8>) -> u64;
}

/// Runs one session to its end: greeting, commands, `QUIT` or disconnect.
pub(crate) fn serve<R: BufRead, W: Write>(
    reader: R,
    writer: W,
    room: &dyn Mailroom,
) -> io::Result<()> {
    let mut session = Session {
        reader,
        writer,
        room,
        from: None,
        to: Vec::new(),
        errors: 0,
        line: Vec::new(),
    };
    match session.run() {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            // Best effort: the client may be gone already.
            let _ = session.reply("421 4.4.2 devmail: idle timeout, closing");
            Err(e)
        }
        other => other,
    }
}

/// Whether the session goes on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

/// One line from the client, as a command.
enum Input {
    Eof,
    /// The line was too long; the error reply was sent and the rest skipped.
    TooLong,
    Line(String),
}

struct Session<'a, R, W> {
    reader: R,
    writer: W,
    room: &'a dyn Mailroom,
    /// Envelope sender of the message being built (`Some("")` for `<>`).
    from: Option<String>,
    to: Vec<String>,
    errors: usize,
    line: Vec<u8>,
}

impl<R: BufRead, W: Write> Session<'_, R, W> {
    fn run(&mut self) -> io::Result<()> {
        self.reply("220 devmail ESMTP")?;
        loop {
            let flow = match self.next_line()? {
                Input::Eof => Flow::Close,
                Input::TooLong => self.check_errors()?,
                Input::Line(line) => self.command(&line)?,
            };
            if flow == Flow::Close {
                return self.writer.flush();
            }
        }
    }

    /// Sends one reply in a single write (no Nagle wait between pieces).
    fn reply(&mut self, text: &str) -> io::Result<()> {
        if let Mode::Slow(wait) = self.room.mode() {
            std::thread::sleep(wait);
        }
        let mut bytes = Vec::with_capacity(text.len() + 2);
        bytes.extend_from_slice(text.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.writer.write_all(&bytes)?;
        self.writer.flush()
    }

    /// Replies with an error and counts it; too many end the session.
    fn fail(&mut self, text: &str) -> io::Result<Flow> {
        self.errors += 1;
        self.reply(text)?;
        self.check_errors()
    }

    fn check_errors(&mut self) -> io::Result<Flow> {
        if self.errors > MAX_ERRORS {
            self.reply("421 4.7.0 devmail: too many errors, closing")?;
            return Ok(Flow::Close);
        }
        Ok(Flow::Continue)
    }

    fn next_line(&mut self) -> io::Result<Input> {
        match read_chunk(&mut self.reader, MAX_COMMAND, &mut self.line)? {
            Chunk::Eof => Ok(Input::Eof),
            Chunk::Line => Ok(Input::Line(
                String::from_utf8_lossy(trim_eol(&self.line)).into_owned(),
            )),
            Chunk::Partial => {
                self.errors += 1;
                self.reply("500 5.5.2 line too long")?;
                loop {
                    match read_chunk(&mut self.reader, MAX_COMMAND, &mut self.line)? {
                        Chunk::Eof => return Ok(Input::Eof),
                        Chunk::Line => return Ok(Input::TooLong),
                        Chunk::Partial => {}
                    }
                }
            }
        }
    }

    fn reset(&mut self) {
        self.from = None;
        self.to.clear();
    }

    fn command(&mut self, line: &str) -> io::Result<Flow> {
        let line = line.trim();
        let (verb, arg) = match line.split_once([' ', '\t']) {
            Some((verb, arg)) => (verb, arg.trim()),
            None => (line, ""),
        };
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                self.reset();
                self.reply(&format!(
                    "250-devmail\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE {MAX_MESSAGE}"
                ))?;
            }
            "HELO" => {
                self.reset();
                self.reply("250 devmail")?;
            }
            "MAIL" => return self.mail(arg),
            "RCPT" => return self.rcpt(arg),
            "DATA" => return self.data(),
            "RSET" => {
                self.reset();
                self.reply("250 2.0.0 ok")?;
            }
            "NOOP" => self.reply("250 2.0.0 ok")?,
            "VRFY" => self.reply("252 2.1.5 cannot verify, but will accept")?,
            "AUTH" => return self.auth(arg),
            "QUIT" => {
                self.reply("221 2.0.0 bye")?;
                return Ok(Flow::Close);
            }
            "STARTTLS" | "EXPN" | "BDAT" | "HELP" | "TURN" | "ETRN" => {
                return self.fail("502 5.5.1 command not implemented");
            }
            _ => return self.fail("500 5.5.1 command unrecognized"),
        }
        Ok(Flow::Continue)
    }

    fn mail(&mut self, arg: &str) -> io::Result<Flow> {
        let Some((from, params)) = path_argument(arg, "FROM:") else {
            return self.fail("501 5.5.4 syntax: MAIL FROM:<address>");
        };
        if self.from.is_some() {
            return self.fail("503 5.5.1 sender already given");
        }
        if declared_size(params).is_some_and(|size| size > MAX_MESSAGE) {
            return self.fail("552 5.3.4 message size exceeds limit");
        }
        if self.room.mode() == Mode::TempFail {
            self.reply("451 4.3.0 try again later")?;
            return Ok(Flow::Continue);
        }
        self.from = Some(from);
        self.reply("250 2.1.0 ok")?;
        Ok(Flow::Continue)
    }

    fn rcpt(&mut self, arg: &str) -> io::Result<Flow> {
        if self.from.is_none() {
            return self.fail("503 5.5.1 need MAIL FROM first");
        }
        let Some((to, _params)) = path_argument(arg, "TO:").filter(|(to, _)| !to.is_empty()) else {
            return self.fail("501 5.5.4 syntax: RCPT TO:<address>");
        };
        if self.to.len() >= MAX_RECIPIENTS {
            self.reply("452 4.5.3 too many recipients")?;
            return Ok(Flow::Continue);
        }
        if self.room.mode() == Mode::Reject {
            self.reply("550 5.1.1 mailbox unavailable")?;
            return Ok(Flow::Continue);
        }
        self.to.push(to);
        self.reply("250 2.1.5 ok")?;
        Ok(Flow::Continue)
    }

    fn data(&mut self) -> io::Result<Flow> {
        if self.from.is_none() {
            return self.fail("503 5.5.1 need MAIL FROM first");
        }
        if self.to.is_empty() {
            return self.fail("503 5.5.1 need RCPT TO first");
        }
        self.reply("354 end data with <CR><LF>.<CR><LF>")?;
        let Some(raw) = self.read_message()? else {
            return Ok(Flow::Close);
        };
        if self.room.mode() == Mode::Hangup {
            return Ok(Flow::Close);
        }
        let from = self.from.take().unwrap_or_default();
        let to = std::mem::take(&mut self.to);
        match raw {
            Message::TooBig => self.reply("552 5.3.4 message too big")?,
            Message::Complete(raw) => {
                let id = self.room.deliver(from, to, raw);
                self.reply(&format!("250 2.0.0 queued as {id}"))?;
            }
        }
        Ok(Flow::Continue)
    }

    /// Reads the message up to the lone `.` line, undoing dot-stuffing.
    /// `None` if the client disconnected before the end.
    fn read_message(&mut self) -> io::Result<Option<Message>> {
        let mut body = Vec::new();
        let mut too_big = false;
        let mut at_line_start = true;
        loop {
            let chunk = read_chunk(&mut self.reader, DATA_CHUNK, &mut self.line)?;
            if chunk == Chunk::Eof {
                return Ok(None);
            }
            let mut bytes = &self.line[..];
            if at_line_start {
                if chunk == Chunk::Line && trim_eol(bytes) == b"." {
                    break;
                }
                bytes = bytes.strip_prefix(b".").unwrap_or(bytes);
            }
            if too_big || body.len() + bytes.len() > MAX_MESSAGE {
                too_big = true;
            } else {
                body.extend_from_slice(bytes);
            }
            at_line_start = chunk == Chunk::Line;
        }
        Ok(Some(if too_big {
            Message::TooBig
        } else {
            Message::Complete(body)
        }))
    }

    /// Accepts any credentials: this is a catcher for development.
    fn auth(&mut self, arg: &str) -> io::Result<Flow> {
        let (mechanism, initial) = match arg.split_once([' ', '\t']) {
            Some((mechanism, initial)) => (mechanism, initial.trim()),
            None => (arg, ""),
        };
        let prompts: &[&str] = match mechanism.to_ascii_uppercase().as_str() {
            "PLAIN" if initial.is_empty() => &["334 "],
            "PLAIN" => &[],
            // "Username:" and "Password:" in base64.
            "LOGIN" if initial.is_empty() => &["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6"],
            "LOGIN" => &["334 UGFzc3dvcmQ6"],
            "" => return self.fail("501 5.5.4 syntax: AUTH mechanism"),
            _ => return self.fail("504 5.5.4 unrecognized authentication type"),
        };
        for prompt in prompts {
            self.reply(prompt)?;
            match self.next_line()? {
                Input::Eof => return Ok(Flow::Close),
                Input::TooLong => return self.check_errors(),
                Input::Line(answer) if answer.trim() == "*" => {
                    return self.fail("501 5.7.0 authentication cancelled");
                }
                Input::Line(_) => {}
            }
        }
        self.reply("235 2.7.0 accepted")?;
        Ok(Flow::Continue)
    }
}

enum Message {
    TooBig,
    Complete(Vec<u8>),
}

/// Splits `FROM:<a@b> BODY=8BITMIME` (after the verb) into the address and
/// the parameters. `None` if the keyword or the closing `>` is missing.
fn path_argument<'a>(arg: &'a str, keyword: &str) -> Option<(String, &'a str)> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg.get(keyword.len()..)?.trim_start();
    if let Some(inner) = rest.strip_prefix('<') {
        let end = inner.find('>')?;
        return Some((inner[..end].to_string(), inner[end + 1..].trim()));
    }
    // Tolerate a bare address without angle brackets.
    let (address, params) = rest.split_once(' ').unwrap_or((rest, ""));
    Some((address.to_string(), params.trim()))
}

/// The `SIZE=n` parameter of `MAIL FROM`, if given and numeric.
fn declared_size(params: &str) -> Option<usize> {
    params.split_whitespace().find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.eq_ignore_ascii_case("SIZE")
            .then(|| value.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
#[path = "smtp/tests.rs"]
mod tests;
