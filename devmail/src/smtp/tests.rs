#![allow(clippy::unwrap_used)]

use super::*;
use std::cell::RefCell;
use std::io::Cursor;

type Delivered = (String, Vec<String>, Vec<u8>);

struct Fake {
    mode: Mode,
    delivered: RefCell<Vec<Delivered>>,
}

impl Mailroom for Fake {
    fn mode(&self) -> Mode {
        self.mode
    }

    fn deliver(&self, from: String, to: Vec<String>, raw: Vec<u8>) -> u64 {
        let mut delivered = self.delivered.borrow_mut();
        delivered.push((from, to, raw));
        delivered.len() as u64
    }
}

/// Plays `input` to a session; returns the reply lines and what was delivered.
fn talk(input: &[u8], mode: Mode) -> (Vec<String>, Vec<Delivered>) {
    let room = Fake {
        mode,
        delivered: RefCell::new(Vec::new()),
    };
    let mut output = Vec::new();
    serve(Cursor::new(input.to_vec()), &mut output, &room).unwrap();
    let replies = String::from_utf8(output)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    (replies, room.delivered.into_inner())
}

fn codes(replies: &[String]) -> Vec<&str> {
    replies.iter().map(|r| &r[..3]).collect()
}

#[test]
fn ehlo_advertises_size_but_no_tls_or_auth() {
    let (replies, _) = talk(b"EHLO client\r\nQUIT\r\n", Mode::Accept);
    assert_eq!(replies[0], "220 devmail ESMTP");
    assert_eq!(
        replies[1..5],
        [
            "250-devmail",
            "250-8BITMIME",
            "250-SMTPUTF8",
            "250 SIZE 10485760"
        ]
    );
    assert!(!replies
        .iter()
        .any(|r| r.contains("STARTTLS") || r.contains("AUTH")));
    assert_eq!(replies[5], "221 2.0.0 bye");
}

#[test]
fn two_messages_on_one_connection_with_dot_stuffing() {
    let input = b"ehlo c\r\n\
        MAIL FROM:<a@x> BODY=8BITMIME SMTPUTF8\r\nRCPT TO:<b@y>\r\nrcpt to: <c@y>\r\nDATA\r\n\
        Subject: one\r\n\r\n..leading dot\r\n.\r\n\
        MAIL FROM:<>\nRCPT TO:<d@y>\nDATA\nSubject: two\n\nbare lf\n.\n\
        QUIT\r\n";
    let (replies, delivered) = talk(input, Mode::Accept);
    assert_eq!(
        codes(&replies),
        [
            // greeting, 4-line EHLO, MAIL, 2 x RCPT, DATA, end; MAIL, RCPT, DATA, end; QUIT
            "220", "250", "250", "250", "250", "250", "250", "250", "354", "250", "250", "250",
            "354", "250", "221"
        ]
    );
    assert_eq!(replies[9], "250 2.0.0 queued as 1");
    assert_eq!(delivered[0].0, "a@x");
    assert_eq!(delivered[0].1, ["b@y", "c@y"]);
    assert_eq!(delivered[0].2, b"Subject: one\r\n\r\n.leading dot\r\n");
    assert_eq!(delivered[1].0, "");
    assert_eq!(delivered[1].2, b"Subject: two\n\nbare lf\n");
}

#[test]
fn order_of_commands_is_enforced() {
    let input = b"RCPT TO:<b@y>\r\nDATA\r\nMAIL FROM:<a@x>\r\nDATA\r\nMAIL FROM:<a@x>\r\nRSET\r\nRCPT TO:<b@y>\r\n";
    let (replies, _) = talk(input, Mode::Accept);
    assert_eq!(
        codes(&replies),
        ["220", "503", "503", "250", "503", "503", "250", "503"]
    );
}

#[test]
fn tempfail_answers_451_to_mail_from_and_stays_usable() {
    let (replies, delivered) = talk(
        b"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nNOOP\r\nQUIT\r\n",
        Mode::TempFail,
    );
    assert_eq!(replies[5], "451 4.3.0 try again later");
    assert_eq!(codes(&replies[6..]), ["503", "250", "221"]);
    assert!(delivered.is_empty());
}

#[test]
fn any_credentials_are_accepted() {
    let input = b"AUTH PLAIN AGEAYg==\r\nAUTH LOGIN\r\ndXNlcg==\r\ncGFzcw==\r\nAUTH LOGIN dXNlcg==\r\ncGFzcw==\r\n\
        AUTH PLAIN\r\nAGEAYg==\r\nAUTH CRAM-MD5\r\nAUTH LOGIN\r\n*\r\n";
    let (replies, _) = talk(input, Mode::Accept);
    assert_eq!(
        codes(&replies),
        ["220", "235", "334", "334", "235", "334", "235", "334", "235", "504", "334", "501"]
    );
}

#[test]
fn small_commands_and_unknown_ones() {
    let (replies, _) = talk(
        b"HELO c\r\nNOOP\r\nVRFY bob\r\nFROB\r\nSTARTTLS\r\nMAIL TO:<x>\r\n\r\n",
        Mode::Accept,
    );
    assert_eq!(
        codes(&replies),
        ["220", "250", "250", "252", "500", "502", "501", "500"]
    );
}

#[test]
fn too_long_command_line_is_refused_and_the_session_goes_on() {
    let mut input = vec![b'A'; 10_000];
    input.extend_from_slice(b"\r\nNOOP\r\n");
    let (replies, _) = talk(&input, Mode::Accept);
    assert_eq!(replies[1..], ["500 5.5.2 line too long", "250 2.0.0 ok"]);
}

#[test]
fn binary_garbage_gets_error_replies() {
    let (replies, _) = talk(b"\x00\xff\xfe\x01\r\n\x80\x81\nNOOP\r\n", Mode::Accept);
    assert_eq!(codes(&replies), ["220", "500", "500", "250"]);
}

#[test]
fn too_many_errors_close_the_session() {
    let input = b"X\r\n".repeat(50);
    let (replies, _) = talk(&input, Mode::Accept);
    assert_eq!(replies.len(), 1 + MAX_ERRORS + 2);
    assert!(replies.last().unwrap().starts_with("421 "));
}

#[test]
fn declared_size_over_limit_is_refused() {
    let (replies, _) = talk(
        b"MAIL FROM:<a@x> SIZE=99999999\r\nMAIL FROM:<a@x> SIZE=10\r\n",
        Mode::Accept,
    );
    assert_eq!(codes(&replies), ["220", "552", "250"]);
}

#[test]
fn oversized_message_is_refused_after_its_end() {
    let mut input = b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n".to_vec();
    let line = [b'x'; 1000];
    while input.len() < MAX_MESSAGE + 10_000 {
        input.extend_from_slice(&line);
        input.extend_from_slice(b"\r\n");
    }
    input.extend_from_slice(b".\r\nNOOP\r\n");
    let (replies, delivered) = talk(&input, Mode::Accept);
    assert_eq!(codes(&replies), ["220", "250", "250", "354", "552", "250"]);
    assert!(delivered.is_empty());
}

#[test]
fn disconnect_in_the_middle_of_data_delivers_nothing() {
    let (replies, delivered) = talk(
        b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nSubject: cut",
        Mode::Accept,
    );
    assert_eq!(codes(&replies), ["220", "250", "250", "354"]);
    assert!(delivered.is_empty());
}

#[test]
fn path_arguments() {
    assert_eq!(
        path_argument("FROM:<a@x> BODY=8BITMIME", "FROM:"),
        Some(("a@x".into(), "BODY=8BITMIME"))
    );
    assert_eq!(
        path_argument("from: <a@x>", "FROM:"),
        Some(("a@x".into(), ""))
    );
    assert_eq!(path_argument("FROM:a@x", "FROM:"), Some(("a@x".into(), "")));
    assert_eq!(path_argument("FROM:<a@x", "FROM:"), None);
    assert_eq!(path_argument("TO:<a@x>", "FROM:"), None);
    assert_eq!(path_argument("é", "FROM:"), None);
}
