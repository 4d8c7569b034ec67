//! The syslog datasource: a UDP and/or TCP server (RFC 6587 newline and octet-counting
//! framing) that parses RFC 3164 and RFC 5424 and re-renders each message the way CrowdSec's
//! syslog datasource does (`Jan 2 15:04:05 host app[pid]: message`), so that the hub's
//! `syslog-logs` parser applies.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{Datelike, Local, Utc};
use syslog_loose::{ProcId, Variant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::Line;
use crate::ack::Ack;
use crate::config::SyslogSpec;
use crate::error::AcquireError;
use crate::split::to_text;

/// Most TCP clients served at once.
const MAX_CONNECTIONS: usize = 256;

/// Turns one syslog message into the line CrowdSec passes to parsers: RFC 3164 / 5424 parsed and
/// re-rendered as `<Jan 2 15:04:05> <host|unknownhost> <app>[<pid>]: <msg>`; with
/// `disable_rfc_parser`, or when the message is neither, only the `<PRI>` is removed.
pub fn render_syslog(message: &str, disable_rfc_parser: bool) -> String {
    let message = message.trim_end_matches(['\n', '\r', '\0']);
    if disable_rfc_parser {
        return strip_pri(message).to_string();
    }
    let year = Local::now().year();
    let parsed =
        match syslog_loose::parse_message_with_year_exact(message, |_| year, Variant::Either) {
            Ok(m) if m.timestamp.is_some() || m.hostname.is_some() || m.appname.is_some() => m,
            _ => return strip_pri(message).to_string(),
        };
    let mut out = match parsed.timestamp {
        Some(ts) => ts.format("%b %-d %H:%M:%S").to_string(),
        None => Utc::now().format("%b %-d %H:%M:%S").to_string(),
    };
    out.push(' ');
    out.push_str(
        parsed
            .hostname
            .filter(|h| !h.is_empty())
            .unwrap_or("unknownhost"),
    );
    if let Some(app) = parsed.appname.filter(|a| !a.is_empty()) {
        out.push(' ');
        out.push_str(app);
    }
    match parsed.procid {
        Some(ProcId::PID(pid)) => out.push_str(&format!("[{pid}]: ")),
        Some(ProcId::Name(name)) if !name.is_empty() => out.push_str(&format!("[{name}]: ")),
        _ => out.push_str(": "),
    }
    out.push_str(parsed.msg.trim_start_matches('\u{feff}'));
    out
}

fn strip_pri(message: &str) -> &str {
    if let Some(rest) = message.strip_prefix('<')
        && let Some(end) = rest.find('>')
        && end > 0
        && end <= 3
        && rest[..end].bytes().all(|b| b.is_ascii_digit())
    {
        return &rest[end + 1..];
    }
    message
}

/// Opens the configured listeners (errors surface at start).
pub(crate) async fn bind(
    spec: &SyslogSpec,
) -> Result<(Option<UdpSocket>, Option<TcpListener>), AcquireError> {
    let addr = format!("{}:{}", spec.listen_addr, spec.listen_port);
    let udp = if spec.udp {
        Some(
            UdpSocket::bind(&addr)
                .await
                .map_err(|err| AcquireError::Listen {
                    proto: "udp",
                    addr: addr.clone(),
                    err,
                })?,
        )
    } else {
        None
    };
    // With port 0 both protocols share the port the first one got.
    let addr = match (&udp, spec.listen_port) {
        (Some(u), 0) => u
            .local_addr()
            .map(|a| format!("{}:{}", spec.listen_addr, a.port()))
            .unwrap_or(addr),
        _ => addr,
    };
    let tcp = if spec.tcp {
        Some(
            TcpListener::bind(&addr)
                .await
                .map_err(|err| AcquireError::Listen {
                    proto: "tcp",
                    addr: addr.clone(),
                    err,
                })?,
        )
    } else {
        None
    };
    Ok((udp, tcp))
}

#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) spec: Arc<SyslogSpec>,
    pub(crate) labels: Arc<HashMap<String, String>>,
    pub(crate) tx: mpsc::Sender<Line>,
    pub(crate) cancel: CancellationToken,
}

impl Ctx {
    async fn emit(&self, bytes: Vec<u8>, peer: SocketAddr) -> Result<(), ()> {
        let text = to_text(bytes);
        let raw = render_syslog(&text, self.spec.disable_rfc_parser);
        if raw.is_empty() {
            return Ok(());
        }
        let line = Line {
            raw,
            src: peer.ip().to_string(),
            module: "syslog",
            labels: self.labels.clone(),
            time: Utc::now(),
            ack: Ack::noop(),
        };
        tokio::select! {
            r = self.tx.send(line) => r.map_err(|_| ()),
            () = self.cancel.cancelled() => Err(()),
        }
    }
}

pub(crate) async fn serve_udp(sock: UdpSocket, ctx: Ctx) {
    let mut buf = vec![0u8; 65536];
    loop {
        let received = tokio::select! {
            r = sock.recv_from(&mut buf) => r,
            () = ctx.cancel.cancelled() => return,
        };
        let (n, peer) = match received {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!("syslog udp receive: {e}");
                continue;
            }
        };
        let mut msg = &buf[..n];
        if msg.len() > ctx.spec.max_message_len {
            tracing::warn!(peer = %peer, "syslog message longer than max_message_len, cut");
            msg = &msg[..ctx.spec.max_message_len];
        }
        if ctx.emit(msg.to_vec(), peer).await.is_err() {
            return;
        }
    }
}

pub(crate) async fn serve_tcp(listener: TcpListener, ctx: Ctx) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = ctx.cancel.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!("syslog tcp accept: {e}");
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::warn!(peer = %peer, "too many syslog TCP clients, connection refused");
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let cancel = ctx.cancel.clone();
            tokio::select! {
                () = serve_connection(stream, peer, ctx) => {}
                () = cancel.cancelled() => {}
            }
            drop(permit);
        });
    }
}

async fn serve_connection<R: AsyncRead + Unpin>(stream: R, peer: SocketAddr, ctx: Ctx) {
    let max = ctx.spec.max_message_len;
    let mut reader = BufReader::new(stream);
    loop {
        let frame = match next_frame(&mut reader, max).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(peer = %peer, "syslog tcp read: {e}");
                return;
            }
        };
        if frame.cut {
            tracing::warn!(peer = %peer, "syslog message longer than max_message_len, cut");
        }
        if frame.bytes.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        if ctx.emit(frame.bytes, peer).await.is_err() {
            return;
        }
    }
}

struct Frame {
    bytes: Vec<u8>,
    cut: bool,
}

/// One RFC 6587 frame: `LEN SP MSG` (octet counting) or `MSG LF` (non-transparent framing).
async fn next_frame<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    max: usize,
) -> std::io::Result<Option<Frame>> {
    let first = match reader.fill_buf().await? {
        [] => return Ok(None),
        [b, ..] => *b,
    };
    let mut bytes = Vec::new();
    if first.is_ascii_digit() {
        // Octet counting: digits, one space, then exactly that many bytes.
        let mut digits = Vec::new();
        loop {
            let buf = reader.fill_buf().await?;
            let Some(&b) = buf.first() else {
                return Ok(None);
            };
            if b.is_ascii_digit() && digits.len() < 9 {
                digits.push(b);
                reader.consume(1);
            } else {
                break;
            }
        }
        let space = reader.fill_buf().await?.first() == Some(&b' ');
        let len = std::str::from_utf8(&digits)
            .ok()
            .and_then(|d| d.parse::<usize>().ok());
        match (space, len) {
            (true, Some(len)) => {
                reader.consume(1);
                let keep = len.min(max);
                bytes.resize(keep, 0);
                reader.read_exact(&mut bytes).await?;
                let rest = (len - keep) as u64;
                if rest > 0 {
                    tokio::io::copy(&mut (&mut *reader).take(rest), &mut tokio::io::sink()).await?;
                }
                return Ok(Some(Frame {
                    bytes,
                    cut: len > keep,
                }));
            }
            // Not a length after all: the digits start a newline-framed message.
            _ => bytes = digits,
        }
    }
    let mut cut = false;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok((!bytes.is_empty()).then_some(Frame { bytes, cut }));
        }
        let (chunk, found) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        let room = max.saturating_sub(bytes.len());
        if chunk.len() > room {
            cut = true;
        }
        bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = found.unwrap_or(buf.len());
        reader.consume(used);
        if found.is_some() {
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
            return Ok(Some(Frame { bytes, cut }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rfc3164() {
        let line = render_syslog(
            "<34>Oct 11 22:14:15 mymachine su[123]: 'su root' failed for lonvick on /dev/pts/8",
            false,
        );
        assert_eq!(
            line,
            "Oct 11 22:14:15 mymachine su[123]: 'su root' failed for lonvick on /dev/pts/8"
        );
        let line = render_syslog("<13>Feb  5 17:32:18 host sshd: hello", false);
        assert_eq!(line, "Feb 5 17:32:18 host sshd: hello");
    }

    #[test]
    fn renders_rfc5424() {
        let line = render_syslog(
            "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 99 ID47 [exampleSDID@32473 iut=\"3\"] An application event",
            false,
        );
        assert_eq!(
            line,
            "Oct 11 22:14:15 mymachine.example.com evntslog[99]: An application event"
        );
        let line = render_syslog("<34>1 2003-10-11T22:14:15Z - - - - - hi", false);
        assert_eq!(line, "Oct 11 22:14:15 unknownhost: hi");
    }

    #[test]
    fn pri_only_without_rfc_parser() {
        assert_eq!(render_syslog("<13>anything goes\n", true), "anything goes");
        assert_eq!(render_syslog("no pri", true), "no pri");
    }

    #[tokio::test]
    async fn frames() {
        let data: &[u8] = b"12 <13>hello wo\n<13>plain one\r\n5 abcdefgh\n";
        let mut r = BufReader::new(data);
        let mut out = Vec::new();
        while let Ok(Some(f)) = next_frame(&mut r, 6).await {
            out.push((String::from_utf8_lossy(&f.bytes).into_owned(), f.cut));
        }
        assert_eq!(
            out,
            vec![
                ("<13>he".to_string(), true),
                (String::new(), false),
                ("<13>pl".to_string(), true),
                ("abcde".to_string(), false),
                ("fgh".to_string(), false),
            ]
        );
    }
}
