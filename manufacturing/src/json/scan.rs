//! Splits a JSON input into the raw bytes of one record at a time without
//! reading the whole input: a top-level array is streamed element by element,
//! JSON Lines line by line. Each record is then parsed on its own, so a broken
//! record costs one error and the import goes on.

use std::io::{self, BufRead, Read};

use crate::import::MAX_RECORD_BYTES;

/// What the next step of a source produced; the bytes are in the source's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Raw {
    /// A record starting at `line`.
    Record { line: u64 },
    /// A record that cannot be read; the source skipped it.
    Bad { line: u64, reason: String },
    /// The input is broken beyond this record.
    Fatal { line: u64, reason: String },
    /// The input has no records at all.
    Empty,
    /// No more records.
    End,
}

fn too_large() -> String {
    format!("record larger than {MAX_RECORD_BYTES} bytes")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    ArrayFirst,
    ArrayNext,
    AfterArray,
    Sequence,
    Done,
}

/// A top-level array of values, or values one after the other.
pub(crate) struct ValueScanner<B> {
    input: B,
    line: u64,
    state: State,
    pub(crate) buf: Vec<u8>,
}

impl<B: BufRead> ValueScanner<B> {
    pub(crate) fn new(input: B) -> Self {
        Self {
            input,
            line: 1,
            state: State::Start,
            buf: Vec::new(),
        }
    }

    /// The next non-whitespace byte, not consumed.
    fn skip_ws(&mut self) -> io::Result<Option<u8>> {
        loop {
            let chunk = self.input.fill_buf()?;
            let Some(&b) = chunk.first() else {
                return Ok(None);
            };
            if !b.is_ascii_whitespace() {
                return Ok(Some(b));
            }
            if b == b'\n' {
                self.line += 1;
            }
            self.input.consume(1);
        }
    }

    fn fatal(&mut self, reason: impl Into<String>) -> Raw {
        self.state = State::Done;
        Raw::Fatal {
            line: self.line,
            reason: reason.into(),
        }
    }

    pub(crate) fn next_raw(&mut self) -> io::Result<Raw> {
        loop {
            match self.state {
                State::Done => return Ok(Raw::End),
                State::Start => match self.skip_ws()? {
                    None => {
                        self.state = State::Done;
                        return Ok(Raw::Empty);
                    }
                    Some(b'[') => {
                        self.input.consume(1);
                        self.state = State::ArrayFirst;
                    }
                    Some(_) => self.state = State::Sequence,
                },
                State::ArrayFirst => match self.skip_ws()? {
                    None => return Ok(self.fatal("unterminated array: missing `]`")),
                    Some(b']') => {
                        self.input.consume(1);
                        self.state = State::AfterArray;
                    }
                    Some(_) => {
                        self.state = State::ArrayNext;
                        return self.read_value();
                    }
                },
                State::ArrayNext => match self.skip_ws()? {
                    None => return Ok(self.fatal("unterminated array: missing `]`")),
                    Some(b']') => {
                        self.input.consume(1);
                        self.state = State::AfterArray;
                    }
                    Some(b',') => {
                        self.input.consume(1);
                        return match self.skip_ws()? {
                            None => Ok(self.fatal("unterminated array: missing `]`")),
                            Some(b']') => Ok(self.fatal("trailing comma before `]`")),
                            Some(_) => self.read_value(),
                        };
                    }
                    Some(b) => {
                        let found = char::from(b).escape_default().to_string();
                        return Ok(self.fatal(format!(
                            "expected `,` or `]` after a record, found `{found}`"
                        )));
                    }
                },
                State::AfterArray => match self.skip_ws()? {
                    None => {
                        self.state = State::Done;
                        return Ok(Raw::End);
                    }
                    Some(_) => return Ok(self.fatal("unexpected data after the closing `]`")),
                },
                State::Sequence => match self.skip_ws()? {
                    None => {
                        self.state = State::Done;
                        return Ok(Raw::End);
                    }
                    Some(_) => return self.read_value(),
                },
            }
        }
    }

    /// Reads one value into `buf`: an object, array or string by bracket and
    /// quote matching, anything else up to the next delimiter.
    fn read_value(&mut self) -> io::Result<Raw> {
        self.buf.clear();
        let start = self.line;
        let first = self.input.fill_buf()?.first().copied();
        let composite = matches!(first, Some(b'{' | b'[' | b'"'));
        let mut depth = 0u64;
        let mut in_string = false;
        let mut escape = false;
        loop {
            let chunk = self.input.fill_buf()?;
            if chunk.is_empty() {
                if composite {
                    return Ok(self.fatal(format!("unterminated record starting at line {start}")));
                }
                break;
            }
            let mut end = None;
            let mut newlines = 0;
            for (i, &b) in chunk.iter().enumerate() {
                if !composite {
                    let delimiter = b.is_ascii_whitespace()
                        || matches!(b, b',' | b']' | b'}' | b'[' | b'{' | b'"');
                    if delimiter && !(i == 0 && self.buf.is_empty()) {
                        end = Some(i);
                        break;
                    }
                    continue;
                }
                if b == b'\n' {
                    newlines += 1;
                }
                if in_string {
                    if escape {
                        escape = false;
                    } else if b == b'\\' {
                        escape = true;
                    } else if b == b'"' {
                        in_string = false;
                        if depth == 0 {
                            end = Some(i + 1);
                            break;
                        }
                    }
                    continue;
                }
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            end = Some(i + 1);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let take = end.unwrap_or(chunk.len());
            if self.buf.len() + take > MAX_RECORD_BYTES {
                return Ok(self.fatal(too_large()));
            }
            self.buf.extend_from_slice(&chunk[..take]);
            self.input.consume(take);
            self.line += newlines;
            if end.is_some() {
                break;
            }
        }
        Ok(Raw::Record { line: start })
    }
}

/// JSON Lines: one record per line, blank lines skipped.
pub(crate) struct LineSource<B> {
    input: B,
    line: u64,
    any: bool,
    pub(crate) buf: Vec<u8>,
}

impl<B: BufRead> LineSource<B> {
    pub(crate) fn new(input: B) -> Self {
        Self {
            input,
            line: 0,
            any: false,
            buf: Vec::new(),
        }
    }

    pub(crate) fn next_raw(&mut self) -> io::Result<Raw> {
        loop {
            self.buf.clear();
            let limit = MAX_RECORD_BYTES as u64 + 1;
            let n = Read::take(&mut self.input, limit).read_until(b'\n', &mut self.buf)?;
            if n == 0 {
                return Ok(if self.any { Raw::End } else { Raw::Empty });
            }
            self.line += 1;
            if self.buf.len() > MAX_RECORD_BYTES && self.buf.last() != Some(&b'\n') {
                self.skip_line()?;
                self.any = true;
                return Ok(Raw::Bad {
                    line: self.line,
                    reason: too_large(),
                });
            }
            let trimmed = self.buf.trim_ascii();
            if trimmed.is_empty() {
                continue;
            }
            let (start, len) = (
                self.buf.len() - self.buf.trim_ascii_start().len(),
                trimmed.len(),
            );
            self.buf.drain(..start);
            self.buf.truncate(len);
            self.any = true;
            return Ok(Raw::Record { line: self.line });
        }
    }

    fn skip_line(&mut self) -> io::Result<()> {
        loop {
            let chunk = self.input.fill_buf()?;
            if chunk.is_empty() {
                return Ok(());
            }
            if let Some(i) = chunk.iter().position(|b| *b == b'\n') {
                self.input.consume(i + 1);
                return Ok(());
            }
            let n = chunk.len();
            self.input.consume(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(input: &str) -> Vec<Result<String, Raw>> {
        let mut s = ValueScanner::new(input.as_bytes());
        let mut out = Vec::new();
        loop {
            match s.next_raw().unwrap() {
                Raw::Record { .. } => out.push(Ok(String::from_utf8(s.buf.clone()).unwrap())),
                Raw::End => return out,
                other => {
                    out.push(Err(other));
                    if s.state == State::Done {
                        return out;
                    }
                }
            }
        }
    }

    #[test]
    fn array_elements_are_split_respecting_strings() {
        let got = values(r#"[ {"a": "x}],\"{"}, {"b": [1, {"c": 2}]} ,3 ]"#);
        assert_eq!(
            got,
            vec![
                Ok(r#"{"a": "x}],\"{"}"#.to_owned()),
                Ok(r#"{"b": [1, {"c": 2}]}"#.to_owned()),
                Ok("3".to_owned()),
            ]
        );
    }

    #[test]
    fn concatenated_objects_are_a_sequence() {
        assert_eq!(
            values("{\"a\":1}\n{\"b\":2}\n"),
            vec![Ok("{\"a\":1}".to_owned()), Ok("{\"b\":2}".to_owned())]
        );
    }

    #[test]
    fn broken_arrays_are_fatal_with_a_line() {
        assert_eq!(
            values("[{\"a\":1}\n{\"b\":2}]"),
            vec![
                Ok("{\"a\":1}".to_owned()),
                Err(Raw::Fatal {
                    line: 2,
                    reason: "expected `,` or `]` after a record, found `{`".into()
                })
            ]
        );
        assert!(matches!(
            values("[{\"a\":1},]").last(),
            Some(Err(Raw::Fatal { .. }))
        ));
        assert!(matches!(
            values("[{\"a\":1}").last(),
            Some(Err(Raw::Fatal { .. }))
        ));
        assert!(matches!(
            values("[{\"a\":1").last(),
            Some(Err(Raw::Fatal { .. }))
        ));
        assert!(matches!(
            values("[] x").last(),
            Some(Err(Raw::Fatal { .. }))
        ));
        assert_eq!(values("  \n"), vec![Err(Raw::Empty)]);
        assert_eq!(values("[]"), vec![]);
    }

    #[test]
    fn records_over_the_limit_are_fatal() {
        let big = format!("[\"{}\"]", "x".repeat(MAX_RECORD_BYTES + 1));
        assert_eq!(
            values(&big),
            vec![Err(Raw::Fatal {
                line: 1,
                reason: too_large()
            })]
        );
    }

    #[test]
    fn lines_are_records_and_long_lines_are_skipped() {
        let long = "x".repeat(MAX_RECORD_BYTES + 5);
        let input = format!("{{\"a\":1}}\n\n  {long}\n {{\"b\":2}} \n");
        let mut s = LineSource::new(input.as_bytes());
        assert_eq!(s.next_raw().unwrap(), Raw::Record { line: 1 });
        assert_eq!(s.buf, b"{\"a\":1}");
        assert!(matches!(s.next_raw().unwrap(), Raw::Bad { line: 3, .. }));
        assert_eq!(s.next_raw().unwrap(), Raw::Record { line: 4 });
        assert_eq!(s.buf, b"{\"b\":2}");
        assert_eq!(s.next_raw().unwrap(), Raw::End);
        let mut empty = LineSource::new(&b"\n \n"[..]);
        assert_eq!(empty.next_raw().unwrap(), Raw::Empty);
    }
}
