//! Drives a real `Catcher` over TCP with a hand-written SMTP client.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ipgate_devmail::{Catcher, Mode};

const WAIT: Duration = Duration::from_secs(5);

struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    /// Connects and checks the greeting.
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut client = Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        assert_eq!(client.reply(), "220 devmail ESMTP");
        client
    }

    /// Reads one reply, multi-line or not; returns its last line.
    fn reply(&mut self) -> String {
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            assert!(line.ends_with("\r\n"), "reply line {line:?}");
            let line = line.trim_end().to_string();
            if line.as_bytes().get(3) != Some(&b'-') {
                return line;
            }
        }
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// Sends one command line and returns the reply's last line.
    fn command(&mut self, line: &str) -> String {
        self.send_raw(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Sends a whole message (already dot-stuffed) and returns the final reply.
    fn send_mail(&mut self, from: &str, to: &[&str], message: &str) -> String {
        assert!(self
            .command(&format!("MAIL FROM:<{from}> BODY=8BITMIME SMTPUTF8"))
            .starts_with("250 "));
        for rcpt in to {
            assert!(self
                .command(&format!("RCPT TO:<{rcpt}>"))
                .starts_with("250 "));
        }
        assert!(self.command("DATA").starts_with("354 "));
        self.send_raw(message.as_bytes());
        self.command(".")
    }
}

fn start() -> Catcher {
    Catcher::start("127.0.0.1:0".parse().unwrap()).unwrap()
}

const LONG_TOKEN_HEAD: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const LONG_TOKEN_TAIL: &str = "BBBBBBBBBBBBBBBBBBBB";

fn confirmation_message() -> String {
    format!(
        "From: ipgate <noreply@ipgate.example>\r\n\
         To: alice@example.com\r\n\
         Subject: =?utf-8?q?Best=C3=A4tige_deine_IP?=\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=\"b1\"\r\n\
         \r\n\
         --b1\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\
         \r\n\
         Hallo,\r\n\
         bitte best=C3=A4tigen: https://portal.example/confirm/{LONG_TOKEN_HEAD}=\r\n\
         {LONG_TOKEN_TAIL}\r\n\
         ..Punkt am Zeilenanfang\r\n\
         --b1\r\n\
         Content-Type: text/html; charset=utf-8\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\
         \r\n\
         <p>Bitte <a href=3D\"https://portal.example/confirm/{LONG_TOKEN_HEAD}{LONG_TOKEN_TAIL}\">best=\r\n\
         =C3=A4tigen</a></p>\r\n\
         --b1--\r\n"
    )
}

#[test]
fn multipart_message_is_decoded_and_a_second_one_follows_on_the_same_connection() {
    let catcher = start();
    let mut client = Client::connect(catcher.addr());
    assert_eq!(client.command("EHLO tester"), "250 SIZE 10485760");

    let reply = client.send_mail(
        "noreply@ipgate.example",
        &["alice@example.com"],
        &confirmation_message(),
    );
    assert_eq!(reply, "250 2.0.0 queued as 1");
    let reply = client.send_mail(
        "",
        &["bob@example.com", "carol@example.com"],
        "Subject: second\r\n\r\nno links\r\n",
    );
    assert_eq!(reply, "250 2.0.0 queued as 2");
    assert_eq!(client.command("QUIT"), "221 2.0.0 bye");

    let mails = catcher.wait_for(2, WAIT);
    assert_eq!(mails.len(), 2);
    let first = &mails[0];
    assert_eq!(first.id, 1);
    assert_eq!(first.from, "noreply@ipgate.example");
    assert_eq!(first.to, ["alice@example.com"]);
    assert_eq!(first.subject, "Bestätige deine IP");
    assert_eq!(first.header_from, "ipgate <noreply@ipgate.example>");
    assert_eq!(first.header_to, "alice@example.com");
    let url = format!("https://portal.example/confirm/{LONG_TOKEN_HEAD}{LONG_TOKEN_TAIL}");
    let text = first.text.as_deref().unwrap();
    assert!(
        text.contains(&format!("bitte bestätigen: {url}\n")),
        "{text}"
    );
    assert!(
        text.contains("\n.Punkt am Zeilenanfang"),
        "dot-stuffing undone: {text}"
    );
    assert_eq!(
        first.html.as_deref().unwrap().trim_end(),
        format!("<p>Bitte <a href=\"{url}\">bestätigen</a></p>")
    );
    assert_eq!(first.links(), [url]);
    assert!(first.raw.contains("Subject: =?utf-8?q?"));

    let second = &mails[1];
    assert_eq!((second.id, second.from.as_str()), (2, ""));
    assert_eq!(second.to, ["bob@example.com", "carol@example.com"]);
    assert_eq!(second.subject, "second");
    assert!(second.links().is_empty());
    assert_eq!(catcher.mails(), mails);
}

#[test]
fn tempfail_answers_451_to_mail_from_until_accept_again() {
    let catcher = start();
    let mut client = Client::connect(catcher.addr());
    client.command("EHLO tester");
    catcher.set_mode(Mode::TempFail);
    assert_eq!(catcher.mode(), Mode::TempFail);
    assert_eq!(
        client.command("MAIL FROM:<a@example.com>"),
        "451 4.3.0 try again later"
    );
    assert_eq!(client.command("RSET"), "250 2.0.0 ok");

    catcher.set_mode(Mode::Accept);
    let reply = client.send_mail(
        "a@example.com",
        &["b@example.com"],
        "Subject: later\r\n\r\nbody\r\n",
    );
    assert_eq!(reply, "250 2.0.0 queued as 1");
    assert_eq!(catcher.wait_for(1, WAIT).len(), 1);
}

#[test]
fn down_refuses_connections_and_accept_listens_on_the_same_port_again() {
    let catcher = start();
    let addr = catcher.addr();
    let mut open = Client::connect(addr);
    open.command("EHLO tester");

    catcher.set_mode(Mode::Down);
    let err = TcpStream::connect(addr).map(|_| ()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    let mut rest = Vec::new();
    let cut = open.reader.read_to_end(&mut rest);
    assert!(
        matches!(cut, Ok(0) | Err(_)),
        "open session was cut: {cut:?} {rest:?}"
    );

    catcher.set_mode(Mode::Accept);
    assert_eq!(catcher.addr(), addr);
    let mut client = Client::connect(addr);
    let reply = client.send_mail(
        "a@example.com",
        &["b@example.com"],
        "Subject: back\r\n\r\nup again\r\n",
    );
    assert_eq!(reply, "250 2.0.0 queued as 1");
    assert_eq!(catcher.wait_for(1, WAIT)[0].subject, "back");
}

#[test]
fn leaving_down_for_tempfail_also_listens_again() {
    let catcher = start();
    catcher.set_mode(Mode::Down);
    catcher.set_mode(Mode::TempFail);
    let mut client = Client::connect(catcher.addr());
    assert_eq!(
        client.command("MAIL FROM:<a@example.com>"),
        "451 4.3.0 try again later"
    );
}

#[test]
fn garbage_gets_error_replies_and_the_server_keeps_working() {
    let catcher = start();

    let mut long = Client::connect(catcher.addr());
    long.send_raw(&[b'x'; 10 * 1024]);
    assert_eq!(long.reply(), "500 5.5.2 line too long");

    let mut binary = Client::connect(catcher.addr());
    binary.send_raw(b"\x00\x01\xff\xfe\x80garbage\r\n");
    assert_eq!(binary.reply(), "500 5.5.1 command unrecognized");
    binary.send_raw(&(0..=255u8).cycle().take(3000).collect::<Vec<u8>>());
    binary.send_raw(b"\r\n");
    assert!(binary.reply().starts_with("500 "));
    drop(binary);
    drop(long);

    let mut client = Client::connect(catcher.addr());
    let reply = client.send_mail(
        "a@example.com",
        &["b@example.com"],
        "Subject: fine\r\n\r\nstill here\r\n",
    );
    assert_eq!(reply, "250 2.0.0 queued as 1");
    assert_eq!(catcher.wait_for(1, WAIT).len(), 1);
}

#[test]
fn wait_for_returns_what_arrived_when_the_time_is_up() {
    let catcher = start();
    assert!(catcher.mails().is_empty());
    assert!(catcher.wait_for(1, Duration::from_millis(50)).is_empty());
}

#[test]
fn stop_closes_the_port() {
    let catcher = start();
    let addr = catcher.addr();
    let mut open = Client::connect(addr);
    catcher.stop();
    assert!(TcpStream::connect(addr).is_err());
    let mut rest = Vec::new();
    assert!(matches!(open.reader.read_to_end(&mut rest), Ok(0) | Err(_)));
}
