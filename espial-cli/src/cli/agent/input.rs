//! Command lines as bytes: a bounded line reader (a line longer than [`MAX_LINE`] is
//! refused and skipped, never buffered whole) and the parsing of one line into an optional
//! client id, a command word and its arguments.

use std::io;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// The longest command line accepted, in bytes, newline excluded: a maximum event payload
/// (1 MiB) plus 1 KiB for the command, name and options.
pub(crate) const MAX_LINE: usize = (1 << 20) + 1024;

/// How many bytes of an input line an error echoes back (`"input"`).
pub(crate) const ECHO_BYTES: usize = 64;

/// The longest client id (`@ID` before the command).
pub(crate) const MAX_CLIENT_ID: usize = 64;

/// One line read from the input.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A whole line (without its `\n` or `\r\n`).
    Whole(Vec<u8>),
    /// A line longer than the limit: its first bytes and its total length. The rest of the
    /// line was read and discarded.
    TooLong { head: Vec<u8>, len: usize },
    /// End of input.
    Eof,
}

/// Reads lines of at most `limit` bytes from `r`.
pub(crate) struct LineReader<R> {
    r: R,
    limit: usize,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    pub(crate) fn new(r: R, limit: usize) -> Self {
        LineReader { r, limit }
    }

    /// The next line. A last line without a newline is returned as a line.
    pub(crate) async fn next(&mut self) -> io::Result<Line> {
        let mut line = Vec::new();
        let mut len = 0usize;
        let mut too_long = false;
        loop {
            let buf = self.r.fill_buf().await?;
            if buf.is_empty() {
                if len == 0 {
                    return Ok(Line::Eof);
                }
                break;
            }
            let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (&buf[..i], Some(i + 1)),
                None => (buf, None),
            };
            len = len.saturating_add(chunk.len());
            too_long |= len > self.limit;
            if too_long {
                // Keep only the start, for the error's echo.
                let room = ECHO_BYTES.saturating_sub(line.len());
                line.extend_from_slice(&chunk[..room.min(chunk.len())]);
            } else {
                line.extend_from_slice(chunk);
            }
            let used = done.unwrap_or(buf.len());
            self.r.consume(used);
            if done.is_some() {
                break;
            }
        }
        if too_long {
            line.truncate(ECHO_BYTES);
            return Ok(Line::TooLong { head: line, len });
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(Line::Whole(line))
    }
}

/// `bytes` for an error message: lossy UTF-8, at most [`ECHO_BYTES`] bytes, `…` when cut.
pub(crate) fn echo(bytes: &[u8]) -> String {
    let cut = bytes.len() > ECHO_BYTES;
    let mut s = String::from_utf8_lossy(&bytes[..bytes.len().min(ECHO_BYTES)]).into_owned();
    if cut {
        s.push('…');
    }
    s
}

/// One parsed command line: `[@ID] COMMAND [ARGS]`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Parsed<'a> {
    /// The client id, echoed in the reply as `"id"`.
    pub(crate) id: Option<&'a str>,
    /// The command word.
    pub(crate) cmd: &'a str,
    /// Everything after the command word (leading spaces removed).
    pub(crate) rest: &'a str,
}

/// Splits a line; `Err` says why it is not a command line.
pub(crate) fn parse(line: &str) -> Result<Option<Parsed<'_>>, String> {
    let line = line.trim_matches(|c| c == ' ' || c == '\t');
    if line.is_empty() {
        return Ok(None);
    }
    let (mut first, mut rest) = split_word(line);
    let mut id = None;
    if let Some(tag) = first.strip_prefix('@') {
        if tag.is_empty() || tag.len() > MAX_CLIENT_ID || !tag.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(format!(
                "client id: 1 to {MAX_CLIENT_ID} printable ASCII characters after '@'"
            ));
        }
        id = Some(tag);
        (first, rest) = split_word(rest);
        if first.is_empty() {
            return Err("a command must follow the client id".into());
        }
    }
    Ok(Some(Parsed {
        id,
        cmd: first,
        rest,
    }))
}

/// The first word of `s` and the rest (leading spaces removed).
pub(crate) fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start_matches(' ');
    match s.split_once(' ') {
        Some((w, r)) => (w, r.trim_start_matches(' ')),
        None => (s, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], limit: usize) -> Vec<Line> {
        let mut r = LineReader::new(tokio::io::BufReader::with_capacity(4, input), limit);
        let mut out = Vec::new();
        loop {
            let l = r.next().await.unwrap();
            if l == Line::Eof {
                return out;
            }
            out.push(l);
        }
    }

    #[tokio::test]
    async fn bounded_lines() {
        let long = vec![b'x'; 100];
        let mut input = b"a\r\n\xff\xfe\n".to_vec();
        input.extend_from_slice(&long);
        input.extend_from_slice(b"\nquit");
        let got = lines(&input, 10).await;
        assert_eq!(got[0], Line::Whole(b"a".to_vec()));
        assert_eq!(got[1], Line::Whole(vec![0xff, 0xfe]));
        assert_eq!(
            got[2],
            Line::TooLong {
                head: vec![b'x'; ECHO_BYTES],
                len: 100
            }
        );
        assert_eq!(got[3], Line::Whole(b"quit".to_vec()));
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn client_ids_and_words() {
        let p = parse("@7 send jobs hello world").unwrap().unwrap();
        assert_eq!(
            (p.id, p.cmd, p.rest),
            (Some("7"), "send", "jobs hello world")
        );
        let p = parse("nodes").unwrap().unwrap();
        assert_eq!((p.id, p.cmd, p.rest), (None, "nodes", ""));
        assert!(parse("   ").unwrap().is_none());
        assert!(parse("@ nodes").is_err());
        assert!(parse("@x").is_err());
        assert_eq!(echo(&[b'a'; 100]).chars().count(), ECHO_BYTES + 1);
    }
}
