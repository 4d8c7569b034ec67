//! Standard input (`replay -` style): lines until end of input.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Line;
use crate::ack::Ack;
use crate::split::{Piece, Splitter, to_text};

pub(crate) async fn run(
    labels: Arc<HashMap<String, String>>,
    tx: mpsc::Sender<Line>,
    cancel: CancellationToken,
    max_line: usize,
) {
    let mut stdin = tokio::io::stdin();
    let mut split = Splitter::new(0, max_line);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let read = tokio::select! {
            r = stdin.read(&mut buf) => r,
            () = cancel.cancelled() => return,
        };
        let n = match read {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("reading stdin: {e}");
                0
            }
        };
        if n == 0 {
            if let Some(piece) = split.finish() {
                let _ = send(piece, &labels, &tx, &cancel).await;
            }
            return;
        }
        split.feed(&buf[..n]);
        while let Some(piece) = split.next_piece() {
            if send(piece, &labels, &tx, &cancel).await.is_err() {
                return;
            }
        }
    }
}

async fn send(
    piece: Piece,
    labels: &Arc<HashMap<String, String>>,
    tx: &mpsc::Sender<Line>,
    cancel: &CancellationToken,
) -> Result<(), ()> {
    let Piece::Line { bytes, cut, .. } = piece else {
        return Ok(());
    };
    if cut {
        tracing::warn!("stdin: line longer than the limit, cut");
    }
    let line = Line {
        raw: to_text(bytes),
        src: "stdin".into(),
        module: "stdin",
        labels: labels.clone(),
        time: Utc::now(),
        ack: Ack::noop(),
    };
    tokio::select! {
        r = tx.send(line) => r.map_err(|_| ()),
        () = cancel.cancelled() => Err(()),
    }
}
