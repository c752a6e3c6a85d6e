//! Arbitrary bytes as one COPY TEXT row: `parse_row` must never panic, and what it parses must
//! survive being written back in COPY TEXT form and parsed again.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use walrelay_pgwire::copy_text::parse_row;

/// Writes fields as `COPY ... TO STDOUT` would.
fn write_row(fields: &[Option<Cow<'_, str>>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        match f {
            None => out.extend_from_slice(b"\\N"),
            Some(s) => {
                for &b in s.as_bytes() {
                    match b {
                        b'\\' => out.extend_from_slice(b"\\\\"),
                        b'\t' => out.extend_from_slice(b"\\t"),
                        b'\n' => out.extend_from_slice(b"\\n"),
                        b'\r' => out.extend_from_slice(b"\\r"),
                        other => out.push(other),
                    }
                }
            }
        }
    }
    out.push(b'\n');
    out
}

fuzz_target!(|data: &[u8]| {
    let mut fields = Vec::new();
    match parse_row(data, &mut fields) {
        Ok(()) => {
            assert!(!fields.is_empty(), "a row has at least one field");
            let written = write_row(&fields);
            let mut again = Vec::new();
            parse_row(&written, &mut again).expect("a written row parses");
            assert_eq!(fields, again, "row {written:?} does not read back");
        }
        Err(e) => drop(e.to_string()),
    }
});
