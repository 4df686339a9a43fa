//! A small expression language over named fields, used by the root-cause rules in config and by
//! the table filter: `abs(difference) > 1000 and status = "pending"`.
//!
//! - Values: numbers (`12`, `1.5e6`), strings (`"text"` or `'text'`), `true`, `false`, fields.
//! - Operators, loosest first: `or`; `and`; `not`; comparisons `= == != < <= > >=` and `~`
//!   (contains, ignoring case); `+ -`; `* /`; unary `-`.
//! - String equality ignores case. A missing value (an empty cell, NaN, an unknown row value)
//!   makes every comparison false and every arithmetic result missing.
//! - Functions: `abs(x)`, `min(a, b, …)`, `max(a, b, …)`, `log10(x)`, `round(x)`, `sign(x)`,
//!   `pow10(x)` (the non-zero integer k when |x| is within 0.2% of 10^k, else 0),
//!   `contains(text, "a", "b", …)` (any of the phrases, ignoring case), `starts_with(text, p)`,
//!   `ends_with(text, p)`, `missing(x)`, `near(a, b, tolerance)` (|a − b| ≤ tolerance).
//!
//! Field names are resolved when an expression is compiled, so an unknown field is an error
//! before any row is looked at.

use std::borrow::Cow;
use std::fmt;

/// A value while evaluating.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Num(f64),
    Str(Cow<'a, str>),
    Bool(bool),
    Missing,
}

impl Value<'_> {
    fn num(&self) -> Option<f64> {
        match self {
            Value::Num(v) if v.is_finite() => Some(*v),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            _ => None,
        }
    }

    /// Truthiness: true, a finite non-zero number, a non-empty string.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Bool(b) => *b,
            Value::Num(v) => v.is_finite() && *v != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Missing => false,
        }
    }

    fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Value::Str(s) => Some(Cow::Borrowed(s.as_ref())),
            Value::Num(v) if v.is_finite() => Some(Cow::Owned(fmt_num(*v))),
            Value::Bool(b) => Some(Cow::Owned(b.to_string())),
            _ => None,
        }
    }
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Gives a row's values by field index (the index the schema returned at compile time).
pub trait Row {
    fn get(&self, field: usize) -> Value<'_>;
}

/// A compile error: what was wrong and where (1-based column in the expression text).
#[derive(Debug, Clone, PartialEq)]
pub struct ExprError {
    pub message: String,
    pub column: usize,
    pub text: String,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at column {} of `{}`",
            self.message, self.column, self.text
        )
    }
}

impl std::error::Error for ExprError {}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Func {
    Abs,
    Min,
    Max,
    Log10,
    Round,
    Sign,
    Pow10,
    Contains,
    StartsWith,
    EndsWith,
    Missing,
    Near,
}

impl Func {
    fn parse(name: &str) -> Option<(Func, usize, usize)> {
        // (function, minimum arguments, maximum arguments)
        Some(match name {
            "abs" => (Func::Abs, 1, 1),
            "min" => (Func::Min, 1, usize::MAX),
            "max" => (Func::Max, 1, usize::MAX),
            "log10" => (Func::Log10, 1, 1),
            "round" => (Func::Round, 1, 1),
            "sign" => (Func::Sign, 1, 1),
            "pow10" => (Func::Pow10, 1, 1),
            "contains" => (Func::Contains, 2, usize::MAX),
            "starts_with" => (Func::StartsWith, 2, 2),
            "ends_with" => (Func::EndsWith, 2, 2),
            "missing" => (Func::Missing, 1, 1),
            "near" => (Func::Near, 3, 3),
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Num(f64),
    Str(String),
    Bool(bool),
    Field(usize),
    Neg(Box<Node>),
    Not(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Cmp(Cmp, Box<Node>, Box<Node>),
    Arith(Arith, Box<Node>, Box<Node>),
    Call(Func, Vec<Node>),
}

/// A compiled expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    root: Node,
    text: String,
    fields: Vec<usize>,
}

impl Expr {
    /// Parses `text`; `schema` maps a field name to its index (None: unknown field).
    pub fn compile(text: &str, schema: &dyn Fn(&str) -> Option<usize>) -> Result<Expr, ExprError> {
        let tokens = lex(text)?;
        let mut p = Parser {
            tokens,
            pos: 0,
            depth: 0,
            text,
            schema,
            fields: Vec::new(),
        };
        let root = p.or()?;
        if p.pos < p.tokens.len() {
            return Err(p.error_at(p.pos, "unexpected text after the expression"));
        }
        let mut fields = p.fields;
        fields.sort_unstable();
        fields.dedup();
        Ok(Expr {
            root,
            text: text.to_string(),
            fields,
        })
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Indices of the fields the expression reads.
    pub fn fields(&self) -> &[usize] {
        &self.fields
    }

    /// The value of the expression on one row.
    pub fn eval<'r>(&self, row: &'r dyn Row) -> Value<'r> {
        eval(&self.root, row)
    }

    /// Whether the expression holds on the row.
    pub fn matches(&self, row: &dyn Row) -> bool {
        self.eval(row).truthy()
    }
}

fn eval<'r>(n: &Node, row: &'r dyn Row) -> Value<'r> {
    match n {
        Node::Num(v) => Value::Num(*v),
        Node::Str(s) => Value::Str(Cow::Owned(s.clone())),
        Node::Bool(b) => Value::Bool(*b),
        Node::Field(i) => match row.get(*i) {
            Value::Num(v) if !v.is_finite() => Value::Missing,
            v => v,
        },
        Node::Neg(a) => match eval(a, row).num() {
            Some(v) => Value::Num(-v),
            None => Value::Missing,
        },
        Node::Not(a) => Value::Bool(!eval(a, row).truthy()),
        Node::And(a, b) => Value::Bool(eval(a, row).truthy() && eval(b, row).truthy()),
        Node::Or(a, b) => Value::Bool(eval(a, row).truthy() || eval(b, row).truthy()),
        Node::Cmp(op, a, b) => Value::Bool(compare(*op, &eval(a, row), &eval(b, row))),
        Node::Arith(op, a, b) => match (eval(a, row).num(), eval(b, row).num()) {
            (Some(x), Some(y)) => {
                let v = match op {
                    Arith::Add => x + y,
                    Arith::Sub => x - y,
                    Arith::Mul => x * y,
                    Arith::Div => x / y,
                };
                if v.is_finite() {
                    Value::Num(v)
                } else {
                    Value::Missing
                }
            }
            _ => Value::Missing,
        },
        Node::Call(f, args) => call(*f, args, row),
    }
}

fn compare(op: Cmp, a: &Value<'_>, b: &Value<'_>) -> bool {
    if matches!(a, Value::Missing) || matches!(b, Value::Missing) {
        return false;
    }
    if op == Cmp::Contains {
        return match (a.text(), b.text()) {
            (Some(x), Some(y)) => contains_ci(&x, &y),
            _ => false,
        };
    }
    let ord = match (a, b) {
        (Value::Str(x), Value::Str(y)) => Some(x.to_lowercase().cmp(&y.to_lowercase())),
        (Value::Str(s), other) | (other, Value::Str(s)) => {
            // A number compared with text: compare as numbers when the text is one.
            match (s.trim().parse::<f64>().ok(), other.num()) {
                (Some(x), Some(y)) => {
                    let (l, r) = if matches!(a, Value::Str(_)) {
                        (x, y)
                    } else {
                        (y, x)
                    };
                    l.partial_cmp(&r)
                }
                _ => {
                    return op == Cmp::Ne;
                }
            }
        }
        _ => match (a.num(), b.num()) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => None,
        },
    };
    let Some(o) = ord else { return false };
    use std::cmp::Ordering::*;
    match op {
        Cmp::Eq => o == Equal,
        Cmp::Ne => o != Equal,
        Cmp::Lt => o == Less,
        Cmp::Le => o != Greater,
        Cmp::Gt => o == Greater,
        Cmp::Ge => o != Less,
        Cmp::Contains => false,
    }
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    hay.to_lowercase().contains(&needle.to_lowercase())
}

fn call<'r>(f: Func, args: &[Node], row: &'r dyn Row) -> Value<'r> {
    let num = |i: usize| eval(&args[i], row).num();
    let out = |v: Option<f64>| match v {
        Some(x) if x.is_finite() => Value::Num(x),
        _ => Value::Missing,
    };
    match f {
        Func::Abs => out(num(0).map(f64::abs)),
        Func::Log10 => out(num(0).filter(|x| *x > 0.0).map(f64::log10)),
        Func::Round => out(num(0).map(f64::round)),
        Func::Sign => out(num(0).map(|x| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        })),
        Func::Pow10 => out(num(0).map(pow10)),
        Func::Min | Func::Max => {
            let vals: Option<Vec<f64>> = (0..args.len()).map(num).collect();
            out(vals.and_then(|v| {
                v.into_iter()
                    .reduce(|a, b| if f == Func::Min { a.min(b) } else { a.max(b) })
            }))
        }
        Func::Contains => {
            let hay = eval(&args[0], row);
            let Some(h) = hay.text() else {
                return Value::Bool(false);
            };
            let h = h.to_lowercase();
            Value::Bool(args[1..].iter().any(|a| {
                eval(a, row)
                    .text()
                    .is_some_and(|n| !n.is_empty() && h.contains(&n.to_lowercase()))
            }))
        }
        Func::StartsWith | Func::EndsWith => {
            let (a, b) = (eval(&args[0], row), eval(&args[1], row));
            match (a.text(), b.text()) {
                (Some(x), Some(y)) => {
                    let (x, y) = (x.to_lowercase(), y.to_lowercase());
                    Value::Bool(if f == Func::StartsWith {
                        x.starts_with(&y)
                    } else {
                        x.ends_with(&y)
                    })
                }
                _ => Value::Bool(false),
            }
        }
        Func::Missing => Value::Bool(match eval(&args[0], row) {
            Value::Missing => true,
            Value::Str(s) => s.trim().is_empty(),
            Value::Num(v) => !v.is_finite(),
            Value::Bool(_) => false,
        }),
        Func::Near => match (num(0), num(1), num(2)) {
            (Some(a), Some(b), Some(t)) => Value::Bool((a - b).abs() <= t + 1e-9),
            _ => Value::Bool(false),
        },
    }
}

/// The non-zero integer k when |x| is within 0.2% of 10^k, else 0.
pub fn pow10(x: f64) -> f64 {
    let a = x.abs();
    if !(a.is_finite() && a > 0.0) {
        return 0.0;
    }
    let k = a.log10().round();
    if k == 0.0 || k.abs() > 15.0 {
        return 0.0;
    }
    let target = 10f64.powi(k as i32);
    if (a - target).abs() <= 0.002 * target {
        k
    } else {
        0.0
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Ident(String),
    Op(&'static str),
}

fn lex(text: &str) -> Result<Vec<(Tok, usize)>, ExprError> {
    let err = |message: String, at: usize| ExprError {
        message,
        column: text[..at].chars().count() + 1,
        text: text.to_string(),
    };
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            while i < b.len()
                && (b[i].is_ascii_digit()
                    || b[i] == b'.'
                    || b[i] == b'_'
                    || ((b[i] == b'e' || b[i] == b'E')
                        && b.get(i + 1)
                            .is_some_and(|d| d.is_ascii_digit() || *d == b'-' || *d == b'+'))
                    || ((b[i] == b'-' || b[i] == b'+') && matches!(b[i - 1], b'e' | b'E')))
            {
                i += 1;
            }
            let s: String = text[start..i].chars().filter(|c| *c != '_').collect();
            let v = s
                .parse::<f64>()
                .map_err(|_| err(format!("`{}` is not a number", &text[start..i]), start))?;
            out.push((Tok::Num(v), start));
            continue;
        }
        if c == b'"' || c == b'\'' {
            i += 1;
            let mut s = String::new();
            let mut closed = false;
            while i < b.len() {
                if b[i] == c {
                    closed = true;
                    i += 1;
                    break;
                }
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                let ch = text[i..].chars().next().unwrap_or('\u{FFFD}');
                s.push(ch);
                i += ch.len_utf8();
            }
            if !closed {
                return Err(err("unterminated string".into(), start));
            }
            out.push((Tok::Str(s), start));
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.') {
                i += 1;
            }
            out.push((Tok::Ident(text[start..i].to_string()), start));
            continue;
        }
        let two = text.get(i..i + 2).unwrap_or("");
        let op: Option<&'static str> = match two {
            "==" => Some("=="),
            "!=" => Some("!="),
            "<=" => Some("<="),
            ">=" => Some(">="),
            "&&" => Some("and"),
            "||" => Some("or"),
            _ => None,
        };
        if let Some(op) = op {
            out.push((Tok::Op(op), start));
            i += 2;
            continue;
        }
        let op: &'static str = match c {
            b'=' => "=",
            b'<' => "<",
            b'>' => ">",
            b'~' => "~",
            b'+' => "+",
            b'-' => "-",
            b'*' => "*",
            b'/' => "/",
            b'(' => "(",
            b')' => ")",
            b',' => ",",
            b'!' => "not",
            _ => {
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err(err(format!("unexpected character `{ch}`"), start));
            }
        };
        out.push((Tok::Op(op), start));
        i += 1;
    }
    Ok(out)
}

/// How deep an expression may nest (parentheses, function calls, `not`, unary `-` and each
/// operator of a chain all count): deeper input is refused at compile time, since evaluating
/// (and dropping) a tree recurses once per level.
pub const MAX_DEPTH: usize = 100;

struct Parser<'a> {
    tokens: Vec<(Tok, usize)>,
    pos: usize,
    /// The nesting at the current token (see [`MAX_DEPTH`]).
    depth: usize,
    text: &'a str,
    schema: &'a dyn Fn(&str) -> Option<usize>,
    fields: Vec<usize>,
}

impl Parser<'_> {
    fn error_at(&self, tok: usize, message: &str) -> ExprError {
        let at = self.tokens.get(tok).map(|t| t.1).unwrap_or(self.text.len());
        ExprError {
            message: message.to_string(),
            column: self.text[..at].chars().count() + 1,
            text: self.text.to_string(),
        }
    }

    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|t| &t.0)
    }

    fn is_word(&self, w: &str) -> bool {
        match self.peek() {
            Some(Tok::Ident(s)) => s.eq_ignore_ascii_case(w),
            Some(Tok::Op(o)) => *o == w,
            _ => false,
        }
    }

    fn expect_op(&mut self, op: &str) -> Result<(), ExprError> {
        if matches!(self.peek(), Some(Tok::Op(o)) if *o == op) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error_at(self.pos, &format!("expected `{op}`")))
        }
    }

    /// One level deeper, or an error past [`MAX_DEPTH`].
    fn deeper(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_at(
                self.pos,
                &format!("the expression nests more than {MAX_DEPTH} levels deep"),
            ));
        }
        Ok(())
    }

    /// Runs one grammar rule; the levels it went down are given back when it returns.
    fn rule(&mut self, f: fn(&mut Self) -> Result<Node, ExprError>) -> Result<Node, ExprError> {
        let saved = self.depth;
        let r = f(self);
        self.depth = saved;
        r
    }

    fn or(&mut self) -> Result<Node, ExprError> {
        self.rule(|p| {
            p.deeper()?;
            p.or_chain()
        })
    }

    fn or_chain(&mut self) -> Result<Node, ExprError> {
        let mut left = self.and()?;
        while self.is_word("or") {
            self.pos += 1;
            self.deeper()?;
            let right = self.and()?;
            left = Node::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Node, ExprError> {
        self.rule(Self::and_chain)
    }

    fn and_chain(&mut self) -> Result<Node, ExprError> {
        let mut left = self.not()?;
        while self.is_word("and") {
            self.pos += 1;
            self.deeper()?;
            let right = self.not()?;
            left = Node::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Node, ExprError> {
        if self.is_word("not") {
            self.pos += 1;
            self.deeper()?;
            return Ok(Node::Not(Box::new(self.not()?)));
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Node, ExprError> {
        let left = self.sum()?;
        let op = match self.peek() {
            Some(Tok::Op("=")) | Some(Tok::Op("==")) => Cmp::Eq,
            Some(Tok::Op("!=")) => Cmp::Ne,
            Some(Tok::Op("<")) => Cmp::Lt,
            Some(Tok::Op("<=")) => Cmp::Le,
            Some(Tok::Op(">")) => Cmp::Gt,
            Some(Tok::Op(">=")) => Cmp::Ge,
            Some(Tok::Op("~")) => Cmp::Contains,
            _ => return Ok(left),
        };
        self.pos += 1;
        let right = self.sum()?;
        Ok(Node::Cmp(op, Box::new(left), Box::new(right)))
    }

    fn sum(&mut self) -> Result<Node, ExprError> {
        self.rule(Self::sum_chain)
    }

    fn sum_chain(&mut self) -> Result<Node, ExprError> {
        let mut left = self.product()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Op("+")) => Arith::Add,
                Some(Tok::Op("-")) => Arith::Sub,
                _ => return Ok(left),
            };
            self.pos += 1;
            self.deeper()?;
            let right = self.product()?;
            left = Node::Arith(op, Box::new(left), Box::new(right));
        }
    }

    fn product(&mut self) -> Result<Node, ExprError> {
        self.rule(Self::product_chain)
    }

    fn product_chain(&mut self) -> Result<Node, ExprError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Op("*")) => Arith::Mul,
                Some(Tok::Op("/")) => Arith::Div,
                _ => return Ok(left),
            };
            self.pos += 1;
            self.deeper()?;
            let right = self.unary()?;
            left = Node::Arith(op, Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> Result<Node, ExprError> {
        if self.peek() == Some(&Tok::Op("-")) {
            self.pos += 1;
            self.deeper()?;
            return Ok(Node::Neg(Box::new(self.unary()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Node, ExprError> {
        let at = self.pos;
        let Some((tok, _)) = self.tokens.get(self.pos).cloned() else {
            return Err(self.error_at(at, "expected a value"));
        };
        self.pos += 1;
        match tok {
            Tok::Num(v) => Ok(Node::Num(v)),
            Tok::Str(s) => Ok(Node::Str(s)),
            Tok::Op("(") => {
                let e = self.or()?;
                self.expect_op(")")?;
                Ok(e)
            }
            Tok::Ident(name) => {
                let lower = name.to_ascii_lowercase();
                if self.peek() == Some(&Tok::Op("(")) {
                    let Some((f, min, max)) = Func::parse(&lower) else {
                        return Err(self.error_at(at, &format!("unknown function `{name}`")));
                    };
                    self.pos += 1;
                    let mut args = Vec::new();
                    if self.peek() != Some(&Tok::Op(")")) {
                        loop {
                            args.push(self.or()?);
                            if self.peek() == Some(&Tok::Op(",")) {
                                self.pos += 1;
                            } else {
                                break;
                            }
                        }
                    }
                    self.expect_op(")")?;
                    if args.len() < min || args.len() > max {
                        return Err(
                            self.error_at(at, &format!("`{lower}` takes {}", arity(min, max)))
                        );
                    }
                    return Ok(Node::Call(f, args));
                }
                match lower.as_str() {
                    "true" => Ok(Node::Bool(true)),
                    "false" => Ok(Node::Bool(false)),
                    "and" | "or" | "not" => {
                        Err(self.error_at(at, &format!("expected a value before `{lower}`")))
                    }
                    _ => match (self.schema)(&name) {
                        Some(i) => {
                            self.fields.push(i);
                            Ok(Node::Field(i))
                        }
                        None => Err(self.error_at(at, &format!("unknown field `{name}`"))),
                    },
                }
            }
            Tok::Op(op) => Err(self.error_at(at, &format!("expected a value, found `{op}`"))),
        }
    }
}

fn arity(min: usize, max: usize) -> String {
    if min == max {
        format!("{min} argument{}", if min == 1 { "" } else { "s" })
    } else if max == usize::MAX {
        format!("at least {min} arguments")
    } else {
        format!("{min} to {max} arguments")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct R(Vec<Value<'static>>);
    impl Row for R {
        fn get(&self, field: usize) -> Value<'_> {
            self.0.get(field).cloned().unwrap_or(Value::Missing)
        }
    }
    const FIELDS: [&str; 4] = ["difference", "status", "comment", "tolerance"];
    fn schema(name: &str) -> Option<usize> {
        FIELDS.iter().position(|f| *f == name)
    }
    fn row(d: f64, status: &str, comment: &str) -> R {
        R(vec![
            Value::Num(d),
            Value::Str(Cow::Owned(status.into())),
            Value::Str(Cow::Owned(comment.into())),
            Value::Num(0.01),
        ])
    }
    fn m(text: &str, r: &R) -> bool {
        Expr::compile(text, &schema).unwrap().matches(r)
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        // 20,000 levels used to overflow the stack while parsing (or evaluating, or dropping).
        let n = 20_000;
        for text in [
            format!("{}1{}", "(".repeat(n), ")".repeat(n)),
            format!("{}1", "1 + ".repeat(n)),
            format!("{}1", "-".repeat(n)),
            format!("{}1", "not ".repeat(n)),
            format!("{}1{}", "abs(".repeat(n), ")".repeat(n)),
            format!("difference{}", " or difference".repeat(n)),
        ] {
            let e = Expr::compile(&text, &schema).unwrap_err();
            assert!(
                e.message.contains("nests more than 100 levels"),
                "{}",
                e.message
            );
        }
        // Within the limit, nesting still works.
        let ok = format!("{}difference{} > 1", "(".repeat(30), ")".repeat(30));
        assert!(Expr::compile(&ok, &schema).is_ok());
        let chain = format!("difference{}", " + 1".repeat(90));
        let e = Expr::compile(&chain, &schema).unwrap();
        let row = R(vec![Value::Num(10.0)]);
        assert_eq!(e.eval(&row), Value::Num(100.0));
    }

    #[test]
    fn precedence_comparison_and_logic() {
        let r = row(-1500.0, "Pending", "Timing - posted next day");
        assert!(m("abs(difference) > 1000 and status = \"pending\"", &r));
        assert!(!m("difference > 1000 and status = 'pending'", &r));
        assert!(m("difference > 1000 or not status != 'PENDING'", &r));
        assert!(m("1 + 2 * 3 = 7", &r));
        assert!(m("(1 + 2) * 3 = 9", &r));
        assert!(m("-difference = 1_500", &r));
        assert!(m("difference <= -1.5e3 && difference >= -1500", &r));
        assert!(m("comment ~ 'POSTED'", &r));
        assert!(m("contains(comment, 'rounding', 'timing')", &r));
        assert!(!m("contains(comment, 'rounding', 'fx')", &r));
        assert!(m(
            "starts_with(comment, 'timing') and ends_with(comment, 'DAY')",
            &r
        ));
        assert!(m("near(difference, -1500.004, tolerance)", &r));
        assert!(!m("near(difference, -1500.02, tolerance)", &r));
        assert!(m(
            "min(difference, 3, 7) = difference and max(1, 2) = 2",
            &r
        ));
        assert!(m("sign(difference) = -1 and round(2.6) = 3", &r));
    }

    #[test]
    fn missing_values_never_compare() {
        let r = row(f64::NAN, "", "");
        assert!(!m("difference > 0", &r));
        assert!(!m("difference <= 0", &r));
        assert!(!m("difference = difference", &r));
        assert!(m("missing(difference) and missing(comment)", &r));
        assert!(!m("difference + 1 > 0", &r));
        assert!(!m("comment ~ 'x'", &r));
        // Division by zero is missing, not infinity.
        assert!(!m("1 / 0 > 0", &r));
    }

    #[test]
    fn pow10_recognises_powers_only() {
        assert_eq!(pow10(10.0), 1.0);
        assert_eq!(pow10(1000.2), 3.0);
        assert_eq!(pow10(0.01), -2.0);
        assert_eq!(pow10(-100.0), 2.0);
        assert_eq!(pow10(1.0), 0.0);
        assert_eq!(pow10(20.0), 0.0);
        assert_eq!(pow10(0.0), 0.0);
        assert_eq!(pow10(f64::NAN), 0.0);
    }

    #[test]
    fn numbers_in_text_compare_as_numbers() {
        let r = R(vec![Value::Num(5.0), Value::Str(Cow::Owned("12".into()))]);
        assert!(m("status > difference", &r));
        assert!(m("status = 12", &r));
    }

    #[test]
    fn errors_name_what_and_where() {
        let e = Expr::compile("abs(difference > 3", &schema).unwrap_err();
        assert_eq!(e.message, "expected `)`");
        assert_eq!(e.column, 19);
        let e = Expr::compile("diference > 3", &schema).unwrap_err();
        assert_eq!(e.message, "unknown field `diference`");
        assert_eq!(e.column, 1);
        let e = Expr::compile("difference > 3 status", &schema).unwrap_err();
        assert_eq!(e.message, "unexpected text after the expression");
        assert_eq!(e.column, 16);
        let e = Expr::compile("frobnicate(difference)", &schema).unwrap_err();
        assert!(e.message.contains("unknown function `frobnicate`"));
        let e = Expr::compile("abs(1, 2)", &schema).unwrap_err();
        assert_eq!(e.message, "`abs` takes 1 argument");
        let e = Expr::compile("comment = 'open", &schema).unwrap_err();
        assert_eq!(e.message, "unterminated string");
        let e = Expr::compile("difference > $3", &schema).unwrap_err();
        assert_eq!(e.message, "unexpected character `$`");
        assert_eq!(
            e.to_string(),
            "unexpected character `$` at column 14 of `difference > $3`"
        );
        let e = Expr::compile("", &schema).unwrap_err();
        assert_eq!(e.message, "expected a value");
    }

    #[test]
    fn fields_read_are_listed() {
        let e = Expr::compile("difference > tolerance and difference < 5", &schema).unwrap();
        assert_eq!(e.fields(), &[0, 3]);
        assert_eq!(e.text(), "difference > tolerance and difference < 5");
    }
}
