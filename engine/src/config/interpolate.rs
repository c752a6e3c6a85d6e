//! `${VAR}` / `${VAR:-default}` / `$$` interpolation over the raw configuration
//! text, before YAML parsing, so that line numbers stay those of the file.
//!
//! Comments are left alone (a `# ${NOT_SET}` in a comment is no error), which
//! needs a light idea of YAML quoting: `#` starts a comment when it follows
//! whitespace (or starts the line) outside a quoted scalar.

use std::collections::HashMap;

/// One substitution on a line, in 1-based character columns: the text at
/// `orig_start..orig_start + orig_len` of the file became
/// `new_start..new_start + new_len` of the expanded text.
#[derive(Debug, Clone, Copy)]
struct Shift {
    new_start: usize,
    new_len: usize,
    orig_start: usize,
    orig_len: usize,
}

/// Maps columns of the expanded text back to columns of the file.
#[derive(Debug, Default)]
pub(super) struct ColumnMap {
    lines: HashMap<usize, Vec<Shift>>,
}

impl ColumnMap {
    /// The file column of `column` on `line` of the expanded text; a column
    /// inside a substituted value maps to the start of its `${`.
    pub(super) fn original(&self, line: usize, column: usize) -> usize {
        let Some(shifts) = self.lines.get(&line) else {
            return column;
        };
        let mut offset: isize = 0;
        for shift in shifts {
            if column < shift.new_start {
                break;
            }
            if column < shift.new_start + shift.new_len {
                return shift.orig_start;
            }
            offset = (shift.orig_start + shift.orig_len) as isize
                - (shift.new_start + shift.new_len) as isize;
        }
        column.saturating_add_signed(offset)
    }
}

/// An interpolation failure at a 1-based line and character column.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) line: usize,
    pub(super) column: usize,
    pub(super) message: String,
}

/// Expands every reference of `text`; all failures are reported together.
pub(super) fn expand(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, ColumnMap), Vec<Failure>> {
    let mut out = String::with_capacity(text.len());
    let mut map = ColumnMap::default();
    let mut failures = Vec::new();
    // The quote of a quoted scalar that is still open (it may span lines).
    let mut quote: Option<char> = None;

    for (index, line) in text.split_inclusive('\n').enumerate() {
        let line_no = index + 1;
        let chars: Vec<char> = line.chars().collect();
        let mut new_col = 1; // column in the expanded line of the next char pushed
        let mut in_comment = false;
        let mut prev: Option<char> = None; // previous char of the line
        let mut prev_token: Option<char> = None; // previous non-blank char of the line
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let col = i + 1;
            if c == '$' && !in_comment {
                match chars.get(i + 1) {
                    Some('$') => {
                        out.push('$');
                        push_shift(&mut map, line_no, new_col, 1, col, 2);
                        new_col += 1;
                        i += 2;
                        prev = Some('$');
                        prev_token = prev;
                        continue;
                    }
                    Some('{') => {
                        let rest = &chars[i + 2..];
                        let Some(close) = rest.iter().position(|&c| c == '}') else {
                            failures.push(Failure {
                                line: line_no,
                                column: col,
                                message:
                                    "unterminated `${`: write `${NAME}` or `${NAME:-default}` \
                                          on one line, or `$$` for a literal `$`"
                                        .to_string(),
                            });
                            // Keep the rest of the line as it is.
                            for &c in &chars[i..] {
                                out.push(c);
                            }
                            break;
                        };
                        let inner: String = rest[..close].iter().collect();
                        let orig_len = close + 3;
                        match resolve(&inner, env) {
                            Ok(value) => {
                                let len = value.chars().count();
                                out.push_str(&value);
                                push_shift(&mut map, line_no, new_col, len, col, orig_len);
                                new_col += len;
                            }
                            Err(message) => failures.push(Failure {
                                line: line_no,
                                column: col,
                                message,
                            }),
                        }
                        i += orig_len;
                        prev = Some('}');
                        prev_token = prev;
                        continue;
                    }
                    // A lone `$` is literal.
                    _ => {}
                }
            }
            if !in_comment {
                match quote {
                    Some('\'') if c == '\'' => {
                        if chars.get(i + 1) == Some(&'\'') {
                            // `''` is an escaped quote inside a single-quoted scalar.
                            out.push_str("''");
                            new_col += 2;
                            i += 2;
                            prev = Some('\'');
                            prev_token = prev;
                            continue;
                        }
                        quote = None;
                    }
                    Some('"') if c == '\\' => {
                        // An escape: the next char cannot close the scalar.
                        out.push(c);
                        new_col += 1;
                        i += 1;
                        if let Some(&next) = chars.get(i) {
                            if next != '\n' {
                                out.push(next);
                                new_col += 1;
                                i += 1;
                            }
                        }
                        prev = Some('\\');
                        prev_token = prev;
                        continue;
                    }
                    Some('"') if c == '"' => quote = None,
                    Some(_) => {}
                    None => {
                        let after_blank = prev.is_none_or(|p| p.is_whitespace());
                        if c == '#' && after_blank {
                            in_comment = true;
                        } else if (c == '\'' || c == '"')
                            && (after_blank || matches!(prev, Some('[' | '{' | ',')))
                            && prev_token
                                .is_none_or(|p| matches!(p, ':' | '-' | '[' | '{' | ',' | '?'))
                        {
                            quote = Some(c);
                        }
                    }
                }
            }
            out.push(c);
            new_col += 1;
            i += 1;
            prev = Some(c);
            if !c.is_whitespace() {
                prev_token = Some(c);
            }
        }
    }

    if failures.is_empty() {
        Ok((out, map))
    } else {
        Err(failures)
    }
}

fn push_shift(
    map: &mut ColumnMap,
    line: usize,
    new_start: usize,
    new_len: usize,
    orig_start: usize,
    orig_len: usize,
) {
    map.lines.entry(line).or_default().push(Shift {
        new_start,
        new_len,
        orig_start,
        orig_len,
    });
}

/// Resolves the inside of `${…}`.
fn resolve(inner: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let (name, default) = match inner.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (inner, None),
    };
    if !is_variable_name(name) {
        return Err(format!(
            "`${{{inner}}}` is not a variable reference: expected `${{NAME}}` or \
             `${{NAME:-default}}` with NAME made of [A-Za-z0-9_] (write `$$` for a literal `$`)"
        ));
    }
    let value = match (env(name), default) {
        (Some(value), Some(default)) if value.is_empty() => default.to_string(),
        (Some(value), _) => value,
        (None, Some(default)) => default.to_string(),
        (None, None) => {
            return Err(format!(
                "environment variable {name} is not set (set it, or give a default with \
                 `${{{name}:-default}}`)"
            ))
        }
    };
    if value.contains(['\n', '\r']) {
        return Err(format!(
            "environment variable {name} contains a line break, which would shift the line \
             numbers of this file; refused"
        ));
    }
    Ok(value)
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
