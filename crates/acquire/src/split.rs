//! Newline framing with a length limit and byte offsets.

/// Default longest line (CrowdSec's `max_buffer_size`).
pub(crate) const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// What the splitter found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    /// A line without its line ending; `end` is the offset just after it.
    Line { bytes: Vec<u8>, end: u64, cut: bool },
    /// Bytes consumed without a line (empty line, rest of an over-long line).
    Skip { end: u64 },
}

/// Splits a byte stream into lines. Offsets count from where the splitter was started.
pub(crate) struct Splitter {
    buf: Vec<u8>,
    /// Consumed prefix of `buf`.
    head: usize,
    /// Bytes from `head` known to contain no newline.
    scanned: usize,
    /// Offset of `buf[head]`.
    start: u64,
    max: usize,
    discarding: bool,
}

impl Splitter {
    pub(crate) fn new(start: u64, max: usize) -> Self {
        Splitter {
            buf: Vec::new(),
            head: 0,
            scanned: 0,
            start,
            max: max.max(1),
            discarding: false,
        }
    }

    /// Offset of the first byte not yet part of a returned piece.
    #[cfg(test)]
    pub(crate) fn offset(&self) -> u64 {
        self.start
    }

    /// Offset just after the last byte fed.
    pub(crate) fn fed_to(&self) -> u64 {
        self.start + (self.buf.len() - self.head) as u64
    }

    /// Forgets buffered bytes and restarts at `start`.
    pub(crate) fn reset(&mut self, start: u64) {
        self.buf.clear();
        self.head = 0;
        self.scanned = 0;
        self.start = start;
        self.discarding = false;
    }

    pub(crate) fn feed(&mut self, data: &[u8]) {
        if self.head > 0 && (self.head == self.buf.len() || self.head >= self.buf.len() / 2) {
            self.buf.drain(..self.head);
            self.head = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete piece, if any.
    pub(crate) fn next_piece(&mut self) -> Option<Piece> {
        let pending = &self.buf[self.head..];
        if let Some(i) = pending[self.scanned..].iter().position(|&b| b == b'\n') {
            let idx = self.scanned + i;
            let end = self.start + idx as u64 + 1;
            let piece = if self.discarding {
                self.discarding = false;
                Piece::Skip { end }
            } else {
                let mut line = &pending[..idx];
                if let [rest @ .., b'\r'] = line {
                    line = rest;
                }
                if line.is_empty() {
                    Piece::Skip { end }
                } else {
                    let cut = line.len() > self.max;
                    if cut {
                        line = cut_at_char(line, self.max);
                    }
                    Piece::Line {
                        bytes: line.to_vec(),
                        end,
                        cut,
                    }
                }
            };
            self.head += idx + 1;
            self.start = end;
            self.scanned = 0;
            return Some(piece);
        }
        self.scanned = pending.len();
        if pending.is_empty() {
            return None;
        }
        if self.discarding {
            let end = self.fed_to();
            self.consume_all();
            return Some(Piece::Skip { end });
        }
        if pending.len() > self.max {
            let bytes = cut_at_char(pending, self.max).to_vec();
            let end = self.fed_to();
            self.consume_all();
            self.discarding = true;
            return Some(Piece::Line {
                bytes,
                end,
                cut: true,
            });
        }
        None
    }

    /// At the end of the stream: the unterminated last line, if any.
    pub(crate) fn finish(&mut self) -> Option<Piece> {
        if let Some(piece) = self.next_piece() {
            return Some(piece);
        }
        let pending = &self.buf[self.head..];
        if pending.is_empty() {
            return None;
        }
        let end = self.fed_to();
        let piece = if self.discarding {
            Piece::Skip { end }
        } else {
            let mut line = pending;
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if line.is_empty() {
                Piece::Skip { end }
            } else {
                Piece::Line {
                    bytes: line.to_vec(),
                    end,
                    cut: false,
                }
            }
        };
        self.consume_all();
        self.discarding = false;
        Some(piece)
    }

    fn consume_all(&mut self) {
        self.start = self.fed_to();
        self.buf.clear();
        self.head = 0;
        self.scanned = 0;
    }
}

/// At most `max` bytes, not splitting a UTF-8 sequence when it can be helped.
fn cut_at_char(bytes: &[u8], max: usize) -> &[u8] {
    let mut end = max.min(bytes.len());
    let floor = end.saturating_sub(3);
    while end > floor && end < bytes.len() && (bytes[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    if end == floor && end < bytes.len() && (bytes[end] & 0xC0) == 0x80 {
        end = max.min(bytes.len());
    }
    &bytes[..end]
}

/// Bytes to text, invalid UTF-8 replaced.
pub(crate) fn to_text(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(s: &mut Splitter) -> Vec<Piece> {
        std::iter::from_fn(|| s.next_piece()).collect()
    }

    fn line(text: &str, end: u64, cut: bool) -> Piece {
        Piece::Line {
            bytes: text.as_bytes().to_vec(),
            end,
            cut,
        }
    }

    #[test]
    fn splits_with_offsets_and_skips_empty_lines() {
        let mut s = Splitter::new(100, 64);
        s.feed(b"ab\r\n\ncd");
        assert_eq!(
            all(&mut s),
            vec![line("ab", 104, false), Piece::Skip { end: 105 }]
        );
        assert_eq!(s.offset(), 105);
        s.feed(b"e\n");
        assert_eq!(all(&mut s), vec![line("cde", 109, false)]);
        s.feed(b"tail");
        assert_eq!(s.finish(), Some(line("tail", 113, false)));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn cuts_long_lines_and_skips_their_rest() {
        let mut s = Splitter::new(0, 4);
        s.feed(b"abcdefg");
        assert_eq!(all(&mut s), vec![line("abcd", 7, true)]);
        s.feed(b"hij\nxy\n");
        assert_eq!(
            all(&mut s),
            vec![Piece::Skip { end: 11 }, line("xy", 14, false)]
        );
        s.feed(b"0123456789\n");
        assert_eq!(all(&mut s), vec![line("0123", 25, true)]);
    }

    #[test]
    fn cut_keeps_utf8_sequences_whole() {
        assert_eq!(cut_at_char("aé".as_bytes(), 2), b"a");
        assert_eq!(to_text(vec![b'a', 0xff]), "a\u{fffd}");
    }
}
