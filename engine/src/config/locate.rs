//! Where each key path (`sink.kafka.properties.acks`, `plugins[1].sha256`,
//! `source.postgres.tables[0]`) sits in the text, so that semantic problems
//! found after deserializing can name a line and column.
//!
//! This scans the block-style YAML that operators write: mapping keys by
//! indentation, `- ` sequence items (also at the indentation of their parent
//! key), and flow `[…]` / `{…}` values that fit on one line. Anything it does
//! not understand is skipped; lookups then fall back to a parent path.

use std::collections::HashMap;

/// 1-based line and character column.
pub(super) type Position = (usize, usize);

#[derive(Debug, Default)]
pub(super) struct Index {
    /// Every occurrence of each path (a duplicated key has several).
    entries: HashMap<String, Vec<Position>>,
}

impl Index {
    /// The position of `path`, or of its nearest located parent.
    pub(super) fn find(&self, path: &str) -> Option<Position> {
        let mut path = path;
        loop {
            if let Some(&position) = self.entries.get(path).and_then(|all| all.first()) {
                return Some(position);
            }
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
        }
    }

    /// The deepest path whose key or item starts on `line` at or before `column`.
    pub(super) fn path_at(&self, line: usize, column: usize) -> Option<&str> {
        self.entries
            .iter()
            .flat_map(|(path, all)| all.iter().map(move |&position| (path, position)))
            .filter(|&(_, (l, c))| l == line && c <= column)
            .max_by_key(|&(path, (_, c))| (c, path.len()))
            .map(|(path, _)| path.as_str())
    }

    /// The second occurrence of `path`, when its key is repeated.
    pub(super) fn repeated(&self, path: &str) -> Option<Position> {
        self.entries.get(path).and_then(|all| all.get(1)).copied()
    }

    fn record(&mut self, path: String, position: Position) {
        self.entries.entry(path).or_default().push(position);
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Map,
    Seq { next: usize },
}

#[derive(Debug)]
struct Frame {
    /// Column (0-based) of the keys or `-` of this container.
    indent: usize,
    path: String,
    kind: Kind,
}

/// Builds the index of `text`.
pub(super) fn index(text: &str) -> Index {
    let mut scanner = Scanner {
        index: Index::default(),
        stack: vec![Frame {
            indent: 0,
            path: String::new(),
            kind: Kind::Map,
        }],
        pending: None,
        block_scalar: None,
    };
    for (number, line) in text.lines().enumerate() {
        let chars: Vec<char> = line.chars().collect();
        scanner.line(number + 1, &chars);
    }
    scanner.index
}

struct Scanner {
    index: Index,
    stack: Vec<Frame>,
    /// A key or item whose value starts on a following line: its path and
    /// the column of that key or `-`.
    pending: Option<(String, usize)>,
    /// Inside a `|` / `>` block scalar owned by a key at this column.
    block_scalar: Option<usize>,
}

impl Scanner {
    fn line(&mut self, line: usize, chars: &[char]) {
        let indent = chars.iter().take_while(|&&c| c == ' ').count();
        let content = &chars[indent..];
        if content.is_empty() || content[0] == '#' || content.iter().all(|c| c.is_whitespace()) {
            return;
        }
        if let Some(owner) = self.block_scalar {
            if indent > owner {
                return;
            }
            self.block_scalar = None;
        }
        if indent == 0 && (starts_with(content, "---") || starts_with(content, "...")) {
            return;
        }
        if let Some((path, parent)) = self.pending.take() {
            let seq = is_seq_item(content);
            if indent > parent {
                let kind = if seq {
                    Kind::Seq { next: 0 }
                } else {
                    Kind::Map
                };
                self.stack.push(Frame { indent, path, kind });
            } else if indent == parent && seq && self.top_kind() == Kind::Map {
                // `key:` followed by `- item` lines at the key's own indentation.
                let kind = Kind::Seq { next: 0 };
                self.stack.push(Frame { indent, path, kind });
            }
        }
        while self.stack.len() > 1 && self.top_indent() > indent {
            self.stack.pop();
        }
        if self.stack.len() > 1
            && self.top_indent() == indent
            && matches!(self.top_kind(), Kind::Seq { .. })
            && !is_seq_item(content)
        {
            // The end of a sequence written at its parent key's indentation.
            self.stack.pop();
        }
        if self.top_indent() != indent {
            // A continuation line (multi-line scalar) or something unexpected.
            return;
        }
        self.entry(line, chars, indent);
    }

    fn top_indent(&self) -> usize {
        self.stack.last().map_or(0, |frame| frame.indent)
    }

    fn top_kind(&self) -> Kind {
        self.stack.last().map_or(Kind::Map, |frame| frame.kind)
    }

    /// An entry of the innermost container, starting at column `at` (0-based).
    fn entry(&mut self, line: usize, chars: &[char], at: usize) {
        let Some(frame) = self.stack.last_mut() else {
            return;
        };
        match &mut frame.kind {
            Kind::Seq { next } => {
                if !is_seq_item(&chars[at..]) {
                    return;
                }
                let path = format!("{}[{}]", frame.path, next);
                *next += 1;
                let start = skip_blanks(chars, at + 1);
                if start >= chars.len() || chars[start] == '#' {
                    self.index.record(path.clone(), (line, at + 1));
                    self.pending = Some((path, at));
                    return;
                }
                self.index.record(path.clone(), (line, start + 1));
                let rest = &chars[start..];
                if is_seq_item(rest) {
                    let kind = Kind::Seq { next: 0 };
                    self.stack.push(Frame {
                        indent: start,
                        path,
                        kind,
                    });
                    self.entry(line, chars, start);
                } else if matches!(rest[0], '[' | '{') {
                    flow(chars, start, &path, line, &mut self.index);
                } else if map_key(chars, start).is_some() {
                    let kind = Kind::Map;
                    self.stack.push(Frame {
                        indent: start,
                        path,
                        kind,
                    });
                    self.entry(line, chars, start);
                }
            }
            Kind::Map => {
                let Some((key, after)) = map_key(chars, at) else {
                    return;
                };
                let path = join(&frame.path, &key);
                self.index.record(path.clone(), (line, at + 1));
                let start = skip_blanks(chars, after);
                match chars.get(start) {
                    None | Some('#') => self.pending = Some((path, at)),
                    Some('[' | '{') => {
                        flow(chars, start, &path, line, &mut self.index);
                    }
                    Some('|' | '>') => self.block_scalar = Some(at),
                    Some(_) => {}
                }
            }
        }
    }
}

fn starts_with(chars: &[char], prefix: &str) -> bool {
    chars.len() >= prefix.len() && prefix.chars().zip(chars).all(|(a, &b)| a == b)
}

fn is_seq_item(chars: &[char]) -> bool {
    chars.first() == Some(&'-') && chars.get(1).is_none_or(|c| c.is_whitespace())
}

fn skip_blanks(chars: &[char], mut at: usize) -> usize {
    while chars.get(at).is_some_and(|c| c.is_whitespace()) {
        at += 1;
    }
    at
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// The end (exclusive) of the quoted scalar starting at `at`.
fn skip_quoted(chars: &[char], at: usize) -> usize {
    let quote = chars[at];
    let mut i = at + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if quote == '"' => i += 1,
            '\'' if quote == '\'' && chars.get(i + 1) == Some(&'\'') => i += 1,
            c if c == quote => return i + 1,
            _ => {}
        }
        i += 1;
    }
    chars.len()
}

/// A block mapping key starting at `at`: the key and the column after its `:`.
fn map_key(chars: &[char], at: usize) -> Option<(String, usize)> {
    if matches!(chars.get(at), Some('"' | '\'')) {
        let end = skip_quoted(chars, at);
        let key: String = chars[at + 1..end.saturating_sub(1).max(at + 1)]
            .iter()
            .collect();
        let colon = skip_blanks(chars, end);
        let after = chars.get(colon + 1);
        return (chars.get(colon) == Some(&':') && after.is_none_or(|c| c.is_whitespace()))
            .then_some((key, colon + 1));
    }
    if matches!(
        chars.get(at),
        None | Some('[' | '{' | '#' | '-' | '&' | '*' | '!' | '|' | '>')
    ) {
        return None;
    }
    let mut i = at;
    while i < chars.len() {
        match chars[i] {
            ':' if chars.get(i + 1).is_none_or(|c| c.is_whitespace()) => {
                let key: String = chars[at..i].iter().collect();
                return Some((key.trim_end().to_string(), i + 1));
            }
            '#' if chars[i - 1].is_whitespace() => return None,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Records the items and keys of the flow collection starting at `at`;
/// returns the column after it (or the end of the line).
fn flow(chars: &[char], at: usize, path: &str, line: usize, index: &mut Index) -> usize {
    let is_seq = chars[at] == '[';
    let mut item = 0;
    let mut i = at + 1;
    loop {
        i = skip_blanks(chars, i);
        let Some(&c) = chars.get(i) else {
            return i;
        };
        if c == ']' || c == '}' {
            // The end of this collection (or a mismatched bracket: stop there too).
            return i + 1;
        }
        if c == ',' {
            i += 1;
            continue;
        }
        if c == '#' {
            return chars.len();
        }
        let child = if is_seq {
            let child = format!("{path}[{item}]");
            item += 1;
            child
        } else {
            // A key: quoted or plain, up to `:`.
            let (key, end) = if c == '"' || c == '\'' {
                let end = skip_quoted(chars, i);
                let key = chars[i + 1..end.saturating_sub(1).max(i + 1)]
                    .iter()
                    .collect();
                (key, end)
            } else {
                let end = plain_end(chars, i, true);
                let key: String = chars[i..end].iter().collect();
                (key.trim_end().to_string(), end)
            };
            let child = join(path, &key);
            index.record(child.clone(), (line, i + 1));
            i = skip_blanks(chars, end);
            if chars.get(i) != Some(&':') {
                continue;
            }
            i = skip_blanks(chars, i + 1);
            match chars.get(i) {
                Some(',' | ']' | '}') => continue,
                None => return i,
                Some(_) => {}
            }
            child
        };
        if is_seq {
            index.record(child.clone(), (line, i + 1));
        }
        i = match chars[i] {
            '[' | '{' => flow(chars, i, &child, line, index),
            '"' | '\'' => skip_quoted(chars, i),
            _ => plain_end(chars, i, false),
        };
    }
}

/// The end of a plain scalar inside a flow collection.
fn plain_end(chars: &[char], at: usize, is_key: bool) -> usize {
    let mut i = at;
    while let Some(&c) = chars.get(i) {
        let ends = matches!(c, ',' | ']' | '}')
            || (c == '#' && i > at && chars[i - 1].is_whitespace())
            || (is_key && c == ':' && chars.get(i + 1).is_none_or(|n| " ,]}".contains(*n)));
        if ends {
            break;
        }
        i += 1;
    }
    i
}
