//! Parser for one row of PostgreSQL's COPY TEXT format, as `COPY ... TO STDOUT` writes it.
//!
//! A row is its fields separated by tab bytes, ending in an optional newline (`\n`, or `\r\n`).
//! A field that is exactly `\N` is SQL NULL. Inside a field, a backslash escapes the next byte:
//! `\b \f \n \r \t \v` are the control characters, `\\` is a backslash, `\` followed by one to
//! three octal digits or `\x` followed by one or two hex digits is that byte, and any other
//! escaped byte stands for itself (so `\<TAB>` is a tab inside the field, not a separator).
//!
//! This runs once per snapshot row, so a field without escapes is borrowed from the line, not
//! copied. The session's client encoding must be UTF-8 (then the bytes `\t` and `\\` only occur
//! as themselves); every field must decode to valid UTF-8.
//!
//! The column values are each type's text output: [`crate::text::parse_value`] types them.
//! A line holding only `\.` (the old end-of-data marker) is not special here: the COPY
//! sub-protocol ends data with CopyDone, so the caller never sees it as a row.
use std::borrow::Cow;

use thiserror::Error;

/// A COPY TEXT row that cannot be decoded. Fields count from 0.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum CopyError {
    #[error(
        "COPY row: field {field} (counting from 0) is not valid UTF-8 after {valid_up_to} bytes"
    )]
    InvalidUtf8 { field: usize, valid_up_to: usize },
    #[error("COPY row: field {field} (counting from 0) ends in a lone backslash")]
    TrailingBackslash { field: usize },
}

/// Parses one COPY TEXT row into `out` (cleared first): `None` for NULL, borrowed text when the
/// field has no escape, owned text otherwise. An empty line is one empty-string field (COPY
/// cannot tell it from a row of a zero-column table; the caller knows the column count).
pub fn parse_row<'a>(line: &'a [u8], out: &mut Vec<Option<Cow<'a, str>>>) -> Result<(), CopyError> {
    out.clear();
    let line = match line.strip_suffix(b"\n") {
        Some(l) => l.strip_suffix(b"\r").unwrap_or(l),
        None => line,
    };
    let mut rest = line;
    loop {
        let field = out.len();
        if let Some(after) = rest.strip_prefix(b"\\N") {
            match after.split_first() {
                None => {
                    out.push(None);
                    return Ok(());
                }
                Some((b'\t', tail)) => {
                    out.push(None);
                    rest = tail;
                    continue;
                }
                // `\N` followed by more text is an escaped 'N' inside a longer field.
                Some(_) => {}
            }
        }
        match rest.iter().position(|&b| b == b'\t' || b == b'\\') {
            None => {
                out.push(Some(borrow(rest, field)?));
                return Ok(());
            }
            Some(i) => {
                let (head, tail) = rest.split_at(i);
                match tail.split_first() {
                    Some((b'\t', after)) => {
                        out.push(Some(borrow(head, field)?));
                        rest = after;
                    }
                    _ => {
                        let (value, after) = unescape(head, tail, field)?;
                        out.push(Some(Cow::Owned(value)));
                        match after {
                            Some(after) => rest = after,
                            None => return Ok(()),
                        }
                    }
                }
            }
        }
    }
}

fn borrow(bytes: &[u8], field: usize) -> Result<Cow<'_, str>, CopyError> {
    std::str::from_utf8(bytes)
        .map(Cow::Borrowed)
        .map_err(|e| CopyError::InvalidUtf8 {
            field,
            valid_up_to: e.valid_up_to(),
        })
}

fn octal_digit(b: u8) -> Option<u8> {
    matches!(b, b'0'..=b'7').then(|| b - b'0')
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes a field whose unescaped start is `head` and whose remainder (starting at a backslash)
/// is `tail`. Returns the text and what follows the field's separator (`None` at end of line).
fn unescape<'a>(
    head: &[u8],
    tail: &'a [u8],
    field: usize,
) -> Result<(String, Option<&'a [u8]>), CopyError> {
    let mut buf = Vec::with_capacity(head.len() + tail.len());
    buf.extend_from_slice(head);
    let mut i = 0;
    let after = loop {
        let Some(&b) = tail.get(i) else { break None };
        i += 1;
        match b {
            b'\t' => break tail.get(i..),
            b'\\' => {
                let Some(&c) = tail.get(i) else {
                    return Err(CopyError::TrailingBackslash { field });
                };
                i += 1;
                let byte = match c {
                    b'b' => 0x08,
                    b'f' => 0x0c,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'v' => 0x0b,
                    b'0'..=b'7' => {
                        let mut v = u32::from(c - b'0');
                        for _ in 0..2 {
                            match tail.get(i).copied().and_then(octal_digit) {
                                Some(d) => {
                                    v = (v << 3) | u32::from(d);
                                    i += 1;
                                }
                                None => break,
                            }
                        }
                        // Three octal digits may exceed 255; PostgreSQL keeps the low byte.
                        (v & 0xff) as u8
                    }
                    b'x' => match tail.get(i).copied().and_then(hex_digit) {
                        Some(h) => {
                            i += 1;
                            match tail.get(i).copied().and_then(hex_digit) {
                                Some(l) => {
                                    i += 1;
                                    (h << 4) | l
                                }
                                None => h,
                            }
                        }
                        None => b'x',
                    },
                    other => other,
                };
                buf.push(byte);
            }
            other => buf.push(other),
        }
    };
    let text = String::from_utf8(buf).map_err(|e| CopyError::InvalidUtf8 {
        field,
        valid_up_to: e.utf8_error().valid_up_to(),
    })?;
    Ok((text, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(line: &[u8]) -> Vec<Option<String>> {
        let mut out = Vec::new();
        parse_row(line, &mut out).unwrap();
        out.into_iter().map(|f| f.map(|c| c.into_owned())).collect()
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn plain_fields_are_borrowed() {
        let line = b"1\thello\t\xc3\xa9t\xc3\xa9\n";
        let mut out = Vec::new();
        parse_row(line, &mut out).unwrap();
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|f| matches!(f, Some(Cow::Borrowed(_)))));
        assert_eq!(
            out,
            vec![
                Some(Cow::Borrowed("1")),
                Some(Cow::Borrowed("hello")),
                Some(Cow::Borrowed("été"))
            ]
        );
    }

    #[test]
    fn newline_is_optional_and_crlf_accepted() {
        assert_eq!(row(b"a\tb"), vec![s("a"), s("b")]);
        assert_eq!(row(b"a\tb\n"), vec![s("a"), s("b")]);
        assert_eq!(row(b"a\tb\r\n"), vec![s("a"), s("b")]);
        // Only one line ending is stripped.
        assert_eq!(row(b"a\\n\n"), vec![s("a\n")]);
    }

    #[test]
    fn null_versus_empty_versus_escaped_backslash_n() {
        assert_eq!(
            row(b"\\N\t\t\\\\N\t\\N\n"),
            vec![None, s(""), s("\\N"), None]
        );
        assert_eq!(row(b"\\N"), vec![None]);
        assert_eq!(row(b""), vec![s("")]);
        assert_eq!(row(b"\n"), vec![s("")]);
        assert_eq!(row(b"\t"), vec![s(""), s("")]);
        assert_eq!(row(b"\t\\N\t"), vec![s(""), None, s("")]);
        // `\N` inside a longer field is an escaped 'N', not NULL.
        assert_eq!(row(b"\\Nx\tx\\N"), vec![s("Nx"), s("xN")]);
        assert_eq!(row(b"\\N\\N"), vec![s("NN")]);
    }

    #[test]
    fn control_escapes() {
        assert_eq!(
            row(b"a\\tb\\nc\\rd\\\\e\\bf\\fg\\vh\tnext"),
            vec![s("a\tb\nc\rd\\e\u{8}f\u{c}g\u{b}h"), s("next")]
        );
        // Escapes at the very start and end of fields.
        assert_eq!(row(b"\\t\t\\\\"), vec![s("\t"), s("\\")]);
    }

    #[test]
    fn octal_and_hex_escapes() {
        assert_eq!(row(b"\\101\\60\\7x"), vec![s("A0\u{7}x")]);
        // At most three octal digits: `\1011` is 'A' then '1'.
        assert_eq!(row(b"\\1011"), vec![s("A1")]);
        // Out-of-range octal keeps the low byte (0o777 & 0xff = 0xff, not UTF-8 alone), so pair
        // it with a continuation byte: \303\251 is "é".
        assert_eq!(row(b"caf\\303\\251"), vec![s("café")]);
        // 0o703 = 0x1c3 and 0o651 = 0x1a9: the low bytes 0xc3 0xa9 are "é".
        assert_eq!(row(b"\\703\\651"), vec![s("é")]);
        assert_eq!(row(b"\\x41\\x4a\\x7\\xzz"), vec![s("AJ\u{7}xzz")]);
        assert_eq!(row(b"\\x414"), vec![s("A4")]);
        assert_eq!(row(b"\\xC3\\xA9"), vec![s("é")]);
        // \x at end of field and of line.
        assert_eq!(row(b"\\x\t\\x"), vec![s("x"), s("x")]);
    }

    #[test]
    fn other_escaped_bytes_are_themselves() {
        assert_eq!(row(b"\\q\\.\\\"\\'"), vec![s("q.\"'")]);
        // A backslash before a raw tab escapes the tab: it is data, not a separator.
        assert_eq!(row(b"a\\\tb\tc"), vec![s("a\tb"), s("c")]);
        // A backslash before a multi-byte character escapes its first byte only; the character
        // survives intact.
        assert_eq!(row("\\é".as_bytes()), vec![s("é")]);
    }

    #[test]
    fn unicode_and_mixed_rows() {
        assert_eq!(
            row("42\t日本語\t\\N\t{\"k\": \"v\\\\n\"}\t😀\\t😀\n".as_bytes()),
            vec![
                s("42"),
                s("日本語"),
                None,
                s("{\"k\": \"v\\n\"}"),
                s("😀\t😀")
            ]
        );
    }

    #[test]
    fn escaped_fields_are_owned_others_borrowed() {
        let mut out = Vec::new();
        parse_row(b"x\ty\\tz\t\\N\tw", &mut out).unwrap();
        assert!(matches!(out[0], Some(Cow::Borrowed("x"))));
        assert!(matches!(&out[1], Some(Cow::Owned(v)) if v == "y\tz"));
        assert!(out[2].is_none());
        assert!(matches!(out[3], Some(Cow::Borrowed("w"))));
    }

    #[test]
    fn out_is_cleared_between_rows() {
        let mut out = Vec::new();
        parse_row(b"a\tb\tc", &mut out).unwrap();
        parse_row(b"d", &mut out).unwrap();
        assert_eq!(out, vec![Some(Cow::Borrowed("d"))]);
    }

    #[test]
    fn errors() {
        let mut out = Vec::new();
        assert_eq!(
            parse_row(b"ok\tab\xff", &mut out),
            Err(CopyError::InvalidUtf8 {
                field: 1,
                valid_up_to: 2
            })
        );
        assert_eq!(
            parse_row(b"ok\t\\tb\\377", &mut out),
            Err(CopyError::InvalidUtf8 {
                field: 1,
                valid_up_to: 2
            })
        );
        assert_eq!(
            parse_row(b"a\tb\\xff\n", &mut out).unwrap_err().to_string(),
            "COPY row: field 1 (counting from 0) is not valid UTF-8 after 1 bytes"
        );
        assert_eq!(
            parse_row(b"a\tb\tc\\", &mut out),
            Err(CopyError::TrailingBackslash { field: 2 })
        );
        assert_eq!(
            parse_row(b"a\\\n", &mut out).unwrap_err().to_string(),
            "COPY row: field 0 (counting from 0) ends in a lone backslash"
        );
    }

    #[test]
    fn random_input_never_panics() {
        let mut x: u64 = 0x1234_5678_9ABC_DEF1;
        let alphabet = b"\\\t\nNxa0179brtvf\xc3\xa9\xff";
        for _ in 0..5000 {
            let mut out = Vec::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 24) as usize;
            let line: Vec<u8> = (0..len)
                .map(|i| alphabet[((x >> (i * 2 % 60)) as usize + i) % alphabet.len()])
                .collect();
            if parse_row(&line, &mut out).is_ok() {
                // A row has one field more than it has separating tabs, so never zero fields.
                assert!(!out.is_empty());
            }
        }
    }
}
