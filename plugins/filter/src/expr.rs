//! The filter's expression language: a tokenizer, a recursive-descent parser and a three-valued
//! evaluator. See README.md for the language.
//!
//! Grammar (keywords are case-insensitive; column names are not):
//!
//! ```text
//! expr     := and ("or" and)*
//! and      := not ("and" not)*
//! not      := "not" not | cond
//! cond     := "(" expr ")"
//!           | operand (cmp operand | "is" ["not"] "null" | ["not"] "in" list)?
//! cmp      := "==" | "!=" | "<" | "<=" | ">" | ">="
//! list     := "[" (operand ("," operand)*)? "]"
//! operand  := "op" | "table" | ("before" | "after") "." (name | '"' quoted name '"')
//!           | 'string' | number | "true" | "false" | "null" | "c" | "u" | "d" | "r" | "t"
//! ```

use std::borrow::Cow;
use std::cmp::Ordering;

use walrelay_plugin_sdk::{Event, Op, Row, Value};

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp(Operand, CmpOp, Operand),
    /// `x is null` (`false`) or `x is not null` (`true`).
    IsNull(Operand, bool),
    /// `x in [...]` (`false`) or `x not in [...]` (`true`).
    In(Operand, Vec<Operand>, bool),
    /// A bare operand used as a condition: true when it is boolean true.
    Truthy(Operand),
}

/// Something that has a value.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Op,
    Table,
    Field(Row, String),
    Lit(Val<'static>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A value while evaluating.
#[derive(Debug, Clone, PartialEq)]
pub enum Val<'a> {
    Null,
    /// An unchanged TOASTed value: not null, but unknown.
    Toast,
    Bool(bool),
    Int(i64),
    Dec(Dec),
    Float(f64),
    Str(Cow<'a, str>),
}

/// An exact decimal: sign, integer digits without leading zeros, fraction digits without
/// trailing zeros (zero is all empty and not negative).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dec {
    neg: bool,
    int: String,
    frac: String,
}

impl Dec {
    /// `[+-]digits[.digits]` (either side of the point may be empty, not both).
    pub fn parse(text: &str) -> Option<Dec> {
        let (neg, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (int, frac) = rest.split_once('.').unwrap_or((rest, ""));
        if (int.is_empty() && frac.is_empty())
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let int = int.trim_start_matches('0').to_string();
        let frac = frac.trim_end_matches('0').to_string();
        let neg = neg && !(int.is_empty() && frac.is_empty());
        Some(Dec { neg, int, frac })
    }

    fn from_i64(v: i64) -> Dec {
        Dec {
            neg: v < 0,
            int: if v == 0 {
                String::new()
            } else {
                v.unsigned_abs().to_string()
            },
            frac: String::new(),
        }
    }

    fn to_f64(&self) -> f64 {
        let int = if self.int.is_empty() { "0" } else { &self.int };
        let frac = if self.frac.is_empty() {
            "0"
        } else {
            &self.frac
        };
        let sign = if self.neg { "-" } else { "" };
        format!("{sign}{int}.{frac}").parse().unwrap_or(f64::NAN)
    }
}

impl Ord for Dec {
    fn cmp(&self, other: &Self) -> Ordering {
        let magnitude = || {
            self.int
                .len()
                .cmp(&other.int.len())
                .then_with(|| self.int.cmp(&other.int))
                // Without trailing zeros, fraction digits compare as strings.
                .then_with(|| self.frac.cmp(&other.frac))
        };
        match (self.neg, other.neg) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => magnitude(),
            (true, true) => magnitude().reverse(),
        }
    }
}

impl PartialOrd for Dec {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A name or keyword.
    Word(String),
    /// A `"quoted"` column name.
    Quoted(String),
    /// A `'string'`.
    Str(String),
    /// A number as written.
    Num(String),
    Sym(&'static str),
    End,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// 1-based, in characters.
    col: usize,
}

const SYMBOLS: [&str; 12] = [
    "==", "!=", "<=", ">=", "<", ">", "(", ")", "[", "]", ",", ".",
];

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

fn tokenize(src: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = src.chars().collect();
    let n = chars.len();
    let mut out: Vec<Token> = Vec::new();
    let mut i = 0;
    while i < n {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        // After `before.` / `after.` a column name may start with a digit.
        let after_dot = matches!(
            out.last(),
            Some(Token {
                tok: Tok::Sym("."),
                ..
            })
        );
        if is_name_char(c) && (after_dot || !c.is_ascii_digit()) {
            let start = i;
            while i < n && is_name_char(chars[i]) {
                i += 1;
            }
            let word = chars[start..i].iter().collect();
            out.push(Token {
                tok: Tok::Word(word),
                col,
            });
            continue;
        }
        match c {
            '\'' | '"' => {
                let mut text = String::new();
                i += 1;
                loop {
                    if i >= n {
                        let what = if c == '\'' { "string" } else { "quoted name" };
                        return Err(format!("unterminated {what} starting at column {col}"));
                    }
                    if chars[i] == c {
                        if i + 1 < n && chars[i + 1] == c {
                            text.push(c);
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    text.push(chars[i]);
                    i += 1;
                }
                let tok = if c == '\'' {
                    Tok::Str(text)
                } else {
                    Tok::Quoted(text)
                };
                out.push(Token { tok, col });
            }
            '0'..='9' | '-' => {
                let start = i;
                if c == '-' {
                    i += 1;
                    if i >= n || !chars[i].is_ascii_digit() {
                        return Err(format!(
                            "unexpected '-' at column {col} (only number literals may be negative)"
                        ));
                    }
                }
                while i < n && chars[i].is_ascii_digit() {
                    i += 1;
                }
                if i + 1 < n && chars[i] == '.' && chars[i + 1].is_ascii_digit() {
                    i += 1;
                    while i < n && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                out.push(Token {
                    tok: Tok::Num(chars[start..i].iter().collect()),
                    col,
                });
            }
            _ => {
                let sym = SYMBOLS.into_iter().find(|s| {
                    let mut sc = s.chars();
                    sc.next() == Some(c) && sc.next().is_none_or(|d| chars.get(i + 1) == Some(&d))
                });
                match sym {
                    Some(s) => {
                        i += s.len();
                        out.push(Token {
                            tok: Tok::Sym(s),
                            col,
                        });
                    }
                    None => {
                        let hint = match c {
                            '=' => " (did you mean '=='?)",
                            '!' => " (did you mean 'not' or '!='?)",
                            '"' => " (strings take single quotes)",
                            _ => "",
                        };
                        return Err(format!("unexpected '{c}' at column {col}{hint}"));
                    }
                }
            }
        }
    }
    out.push(Token {
        tok: Tok::End,
        col: n + 1,
    });
    Ok(out)
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Word(w) => format!("'{w}'"),
        Tok::Quoted(q) => format!("quoted name \"{q}\""),
        Tok::Str(s) => format!("string '{s}'"),
        Tok::Num(n) => format!("number {n}"),
        Tok::Sym(s) => format!("'{s}'"),
        Tok::End => "end of expression".to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Parser

/// Parses `src`; errors say what is wrong and at which column (1-based, in characters).
pub fn parse(src: &str) -> Result<Expr, String> {
    let mut parser = Parser {
        toks: tokenize(src)?,
        pos: 0,
    };
    let expr = parser.expr()?;
    match parser.peek() {
        Token { tok: Tok::End, .. } => Ok(expr),
        t => Err(unexpected(t, "'and', 'or' or the end")),
    }
}

fn unexpected(t: &Token, expected: &str) -> String {
    format!(
        "unexpected {} at column {} (expected {expected})",
        describe(&t.tok),
        t.col
    )
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.toks[self.pos]
    }

    fn peek_at(&self, ahead: usize) -> &Token {
        &self.toks[(self.pos + ahead).min(self.toks.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let t = self.toks[self.pos].clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn is_kw(&self, ahead: usize, kw: &str) -> bool {
        matches!(&self.peek_at(ahead).tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    fn is_sym(&self, sym: &str) -> bool {
        matches!(self.peek().tok, Tok::Sym(s) if s == sym)
    }

    fn expect_sym(&mut self, sym: &str) -> Result<(), String> {
        if self.is_sym(sym) {
            self.bump();
            Ok(())
        } else {
            Err(unexpected(self.peek(), &format!("'{sym}'")))
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.is_kw(0, "or") {
            self.bump();
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.not()?;
        while self.is_kw(0, "and") {
            self.bump();
            let right = self.not()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.is_kw(0, "not") {
            self.bump();
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.cond()
    }

    fn cond(&mut self) -> Result<Expr, String> {
        if self.is_sym("(") {
            self.bump();
            let inner = self.expr()?;
            self.expect_sym(")")?;
            return Ok(inner);
        }
        let start = self.peek().clone();
        let left = self.operand()?;
        if let Tok::Sym(s) = self.peek().tok {
            let op = match s {
                "==" => Some(CmpOp::Eq),
                "!=" => Some(CmpOp::Ne),
                "<" => Some(CmpOp::Lt),
                "<=" => Some(CmpOp::Le),
                ">" => Some(CmpOp::Gt),
                ">=" => Some(CmpOp::Ge),
                _ => None,
            };
            if let Some(op) = op {
                self.bump();
                let right = self.operand()?;
                return Ok(Expr::Cmp(left, op, right));
            }
        }
        if self.is_kw(0, "is") {
            self.bump();
            let negated = self.is_kw(0, "not");
            if negated {
                self.bump();
            }
            if !self.is_kw(0, "null") {
                return Err(unexpected(self.peek(), "'null'"));
            }
            self.bump();
            return Ok(Expr::IsNull(left, negated));
        }
        let negated = self.is_kw(0, "not") && self.is_kw(1, "in");
        if negated || self.is_kw(0, "in") {
            self.bump();
            if negated {
                self.bump();
            }
            self.expect_sym("[")?;
            let mut items = Vec::new();
            if self.is_sym("]") {
                self.bump();
            } else {
                loop {
                    items.push(self.operand()?);
                    if self.is_sym(",") {
                        self.bump();
                    } else if self.is_sym("]") {
                        self.bump();
                        break;
                    } else {
                        return Err(unexpected(self.peek(), "',' or ']'"));
                    }
                }
            }
            return Ok(Expr::In(left, items, negated));
        }
        match left {
            Operand::Field(..) | Operand::Lit(Val::Bool(_)) => Ok(Expr::Truthy(left)),
            _ => Err(format!(
                "{} at column {} is not a condition (compare it with ==, !=, <, <=, >, >=, \
                 'is null' or 'in')",
                describe(&start.tok),
                start.col
            )),
        }
    }

    fn operand(&mut self) -> Result<Operand, String> {
        let t = self.bump();
        let lit = |v| Ok(Operand::Lit(v));
        match &t.tok {
            Tok::Str(s) => lit(Val::Str(Cow::Owned(s.clone()))),
            Tok::Num(n) => match n.parse::<i64>() {
                Ok(i) => lit(Val::Int(i)),
                Err(_) => lit(Val::Dec(Dec::parse(n).expect("the tokenizer checked it"))),
            },
            Tok::Word(w) => match w.to_ascii_lowercase().as_str() {
                "true" => lit(Val::Bool(true)),
                "false" => lit(Val::Bool(false)),
                "null" => lit(Val::Null),
                "c" | "u" | "d" | "r" | "t" => lit(Val::Str(Cow::Owned(w.to_ascii_lowercase()))),
                "op" => Ok(Operand::Op),
                "table" => Ok(Operand::Table),
                kw @ ("before" | "after") => {
                    let row = if kw == "before" {
                        Row::Before
                    } else {
                        Row::After
                    };
                    self.expect_sym(".")?;
                    let name = self.bump();
                    match name.tok {
                        Tok::Word(n) | Tok::Quoted(n) => Ok(Operand::Field(row, n)),
                        _ => Err(unexpected(&name, "a column name")),
                    }
                }
                "and" | "or" | "not" | "in" | "is" => Err(unexpected(&t, "a value")),
                _ => Err(format!(
                    "unknown name '{w}' at column {} (expected op, table, before.<column>, \
                     after.<column> or a literal; strings take single quotes)",
                    t.col
                )),
            },
            _ => Err(unexpected(&t, "a value")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/// Three-valued truth: `None` is unknown.
pub type Truth = Option<bool>;

impl Expr {
    /// The expression's truth for `event`.
    pub fn eval(&self, event: &Event) -> Truth {
        match self {
            Expr::And(a, b) => match a.eval(event) {
                Some(false) => Some(false),
                left => match (left, b.eval(event)) {
                    (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                },
            },
            Expr::Or(a, b) => match a.eval(event) {
                Some(true) => Some(true),
                left => match (left, b.eval(event)) {
                    (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                },
            },
            Expr::Not(e) => e.eval(event).map(|t| !t),
            Expr::Cmp(a, op, b) => compare(&a.value(event), *op, &b.value(event)),
            Expr::IsNull(a, negated) => Some(matches!(a.value(event), Val::Null) != *negated),
            Expr::In(a, items, negated) => {
                let a = a.value(event);
                let mut result = Some(false);
                for item in items {
                    match compare(&a, CmpOp::Eq, &item.value(event)) {
                        Some(true) => {
                            result = Some(true);
                            break;
                        }
                        Some(false) => {}
                        None => result = None,
                    }
                }
                result.map(|t| t != *negated)
            }
            Expr::Truthy(a) => match a.value(event) {
                Val::Bool(b) => Some(b),
                Val::Null | Val::Toast => None,
                _ => Some(false),
            },
        }
    }

    /// The columns the expression reads.
    pub fn fields(&self, out: &mut Vec<(Row, String)>) {
        let mut operand = |o: &Operand| {
            if let Operand::Field(row, name) = o {
                out.push((*row, name.clone()));
            }
        };
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.fields(out);
                b.fields(out);
            }
            Expr::Not(e) => e.fields(out),
            Expr::Cmp(a, _, b) => {
                operand(a);
                operand(b);
            }
            Expr::IsNull(a, _) | Expr::Truthy(a) => operand(a),
            Expr::In(a, items, _) => {
                operand(a);
                items.iter().for_each(operand);
            }
        }
    }
}

impl Operand {
    fn value<'a>(&'a self, event: &'a Event) -> Val<'a> {
        match self {
            Operand::Op => Val::Str(Cow::Borrowed(match event.op() {
                Op::Create => "c",
                Op::Update => "u",
                Op::Delete => "d",
                Op::Read => "r",
                Op::Truncate => "t",
            })),
            Operand::Table => Val::Str(Cow::Owned(event.table().qualified_name())),
            Operand::Field(row, name) => event.get(*row, name).map_or(Val::Null, from_value),
            Operand::Lit(v) => v.clone(),
        }
    }
}

/// How a column value takes part in comparisons.
fn from_value(v: &Value) -> Val<'_> {
    match v {
        Value::Null => Val::Null,
        // Withheld: a column the filter did not declare (it declares every one it reads), unknown
        // as an unchanged TOASTed value is.
        Value::UnchangedToast | Value::Withheld => Val::Toast,
        Value::Boolean(b) => Val::Bool(*b),
        Value::Int16(i) => Val::Int((*i).into()),
        Value::Int32(i) | Value::Date(i) => Val::Int((*i).into()),
        Value::Int64(i) | Value::Time(i) | Value::Timestamp(i) | Value::Timestamptz(i) => {
            Val::Int(*i)
        }
        // Through its shortest decimal form, so that a real 0.1 equals the literal 0.1.
        Value::Float32(f) => Val::Float(f.to_string().parse().unwrap_or(f64::NAN)),
        Value::Float64(f) => Val::Float(*f),
        Value::Numeric(s) => match Dec::parse(s) {
            Some(d) => Val::Dec(d),
            None => match s.as_str() {
                "Infinity" => Val::Float(f64::INFINITY),
                "-Infinity" => Val::Float(f64::NEG_INFINITY),
                _ => Val::Float(f64::NAN),
            },
        },
        Value::Text(s) | Value::Uuid(s) | Value::Json(s) => Val::Str(Cow::Borrowed(s)),
        Value::Bytes(_) => Val::Str(Cow::Owned(v.to_text().unwrap_or_default())),
    }
}

/// `a op b`: unknown when either side is null or unchanged TOAST; false when the kinds are
/// incompatible (or a NaN is involved).
pub fn compare(a: &Val, op: CmpOp, b: &Val) -> Truth {
    use Val::*;
    let ord = match (a, b) {
        (Null | Toast, _) | (_, Null | Toast) => return None,
        (Int(x), Int(y)) => Some(x.cmp(y)),
        (Dec(x), Dec(y)) => Some(x.cmp(y)),
        (Int(x), Dec(y)) => Some(self::Dec::from_i64(*x).cmp(y)),
        (Dec(x), Int(y)) => Some(x.cmp(&self::Dec::from_i64(*y))),
        (Float(x), Float(y)) => x.partial_cmp(y),
        (Float(x), Int(y)) => x.partial_cmp(&(*y as f64)),
        (Int(x), Float(y)) => (*x as f64).partial_cmp(y),
        (Float(x), Dec(y)) => x.partial_cmp(&y.to_f64()),
        (Dec(x), Float(y)) => x.to_f64().partial_cmp(y),
        (Str(x), Str(y)) => Some(x.cmp(y)),
        (Bool(x), Bool(y)) => Some(x.cmp(y)),
        _ => None,
    };
    let Some(ord) = ord else {
        return Some(false);
    };
    Some(match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    })
}
