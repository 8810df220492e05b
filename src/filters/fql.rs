//! The documented subset of Segment's FQL (Filter Query Language), parsed once and evaluated
//! against an event's JSON.
//!
//! ```text
//! expr       := and ("or" and)*
//! and        := unary ("and" unary)*
//! unary      := "!" unary | primary
//! primary    := "(" expr ")" | call | comparison
//! call       := ("contains" | "match" | "exists") "(" path ["," string] ")"
//! comparison := operand ("=" | "!=" | "<" | ">" | "<=" | ">=") operand
//! operand    := path | string | number | true | false | null
//! path       := name ("." name)*          name: letters, digits, _ $ - (not starting with a digit)
//! ```
//!
//! Semantics, chosen so that a rule never fails on an event:
//! * A path that does not exist reads as `null`.
//! * `=` / `!=` compare JSON values; numbers compare numerically (`1 = 1.0`).
//! * `<`, `>`, `<=`, `>=` compare two numbers or two strings; anything else is false.
//! * `contains(path, "s")` is true when the value is a string containing `s`, or an array with
//!   an element equal to `"s"`.
//! * `match(path, "pattern")` matches a string against a glob (`*` any run, `?` one character).
//! * `exists(path)` is true when the path is present and not null.

use std::fmt;

use serde_json::Value;

/// A parse error with the byte offset (0-based) and column (1-based) where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub offset: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at column {}: {}", self.column, self.message)
    }
}

/// A compiled condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare(Operand, Op, Operand),
    Contains(Vec<String>, String),
    Match(Vec<String>, String),
    Exists(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Path(Vec<String>),
    Literal(Value),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    LParen,
    RParen,
    Comma,
    Not,
    Op(Op),
    Str(String),
    Num(f64),
    Name(String),
    End,
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

fn error(src: &str, offset: usize, message: impl Into<String>) -> ParseError {
    let column = src[..offset.min(src.len())].chars().count() + 1;
    ParseError {
        offset,
        column,
        message: message.into(),
    }
}

impl<'a> Lexer<'a> {
    fn skip_ws(&mut self) {
        while let Some(c) = self.src[self.pos..].chars().next() {
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
    }

    /// The next token and the offset it starts at.
    fn next(&mut self) -> Result<(Token, usize), ParseError> {
        self.skip_ws();
        let start = self.pos;
        let rest = &self.src[self.pos..];
        let Some(c) = rest.chars().next() else {
            return Ok((Token::End, start));
        };
        let single = |t: Token, this: &mut Self| {
            this.pos += 1;
            Ok((t, start))
        };
        match c {
            '(' => single(Token::LParen, self),
            ')' => single(Token::RParen, self),
            ',' => single(Token::Comma, self),
            '=' => {
                // `==` is accepted as a synonym of `=`.
                self.pos += if rest.starts_with("==") { 2 } else { 1 };
                Ok((Token::Op(Op::Eq), start))
            }
            '!' if rest.starts_with("!=") => {
                self.pos += 2;
                Ok((Token::Op(Op::Ne), start))
            }
            '!' => single(Token::Not, self),
            '<' | '>' => {
                let eq = rest[1..].starts_with('=');
                self.pos += if eq { 2 } else { 1 };
                let op = match (c, eq) {
                    ('<', false) => Op::Lt,
                    ('<', true) => Op::Le,
                    ('>', false) => Op::Gt,
                    _ => Op::Ge,
                };
                Ok((Token::Op(op), start))
            }
            '"' | '\'' => self.string(c, start),
            c if c.is_ascii_digit() || c == '-' => self.number(start),
            c if c.is_alphabetic() || c == '_' || c == '$' => {
                let len: usize = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '$' | '-' | '.'))
                    .map(char::len_utf8)
                    .sum();
                self.pos += len;
                Ok((Token::Name(rest[..len].to_owned()), start))
            }
            other => Err(error(
                self.src,
                start,
                format!("unexpected character {other:?}"),
            )),
        }
    }

    fn string(&mut self, quote: char, start: usize) -> Result<(Token, usize), ParseError> {
        let mut out = String::new();
        let mut chars = self.src[start + 1..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                c if c == quote => {
                    self.pos = start + 1 + i + 1;
                    return Ok((Token::Str(out), start));
                }
                '\\' => match chars.next() {
                    Some((_, e)) => out.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    }),
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err(error(self.src, start, "this string is not closed"))
    }

    fn number(&mut self, start: usize) -> Result<(Token, usize), ParseError> {
        let rest = &self.src[start..];
        let len = rest
            .char_indices()
            .take_while(|(i, c)| {
                c.is_ascii_digit() || *c == '.' || (*i == 0 && *c == '-') || matches!(c, 'e' | 'E')
            })
            .count();
        let text = &rest[..len];
        let n: f64 = text
            .parse()
            .map_err(|_| error(self.src, start, format!("{text:?} is not a number")))?;
        self.pos = start + len;
        Ok((Token::Num(n), start))
    }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    token: Token,
    at: usize,
}

/// Parse an FQL condition.
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    if src.len() > 10_000 {
        return Err(error(src, 0, "a condition is at most 10,000 characters"));
    }
    let mut lexer = Lexer { src, pos: 0 };
    let (token, at) = lexer.next()?;
    let mut parser = Parser { lexer, token, at };
    if parser.token == Token::End {
        return Err(error(src, 0, "the condition is empty"));
    }
    let expr = parser.or(0)?;
    if parser.token != Token::End {
        return Err(parser.unexpected("`and`, `or` or the end of the condition"));
    }
    Ok(expr)
}

/// Deeper nesting is refused, so a hostile rule cannot exhaust the stack.
const MAX_DEPTH: usize = 64;

impl Parser<'_> {
    fn bump(&mut self) -> Result<(), ParseError> {
        let (token, at) = self.lexer.next()?;
        self.token = token;
        self.at = at;
        Ok(())
    }

    fn unexpected(&self, wanted: &str) -> ParseError {
        let found = match &self.token {
            Token::End => "the end of the condition".to_owned(),
            Token::Name(n) => format!("`{n}`"),
            Token::Str(s) => format!("the string {s:?}"),
            Token::Num(n) => format!("the number {n}"),
            Token::LParen => "`(`".to_owned(),
            Token::RParen => "`)`".to_owned(),
            Token::Comma => "`,`".to_owned(),
            Token::Not => "`!`".to_owned(),
            Token::Op(op) => format!(
                "the operator `{}`",
                match op {
                    Op::Eq => "=",
                    Op::Ne => "!=",
                    Op::Lt => "<",
                    Op::Gt => ">",
                    Op::Le => "<=",
                    Op::Ge => ">=",
                }
            ),
        };
        error(
            self.lexer.src,
            self.at,
            format!("expected {wanted}, found {found}"),
        )
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(&self.token, Token::Name(n) if n == word)
    }

    fn or(&mut self, depth: usize) -> Result<Expr, ParseError> {
        let mut left = self.and(depth)?;
        while self.keyword("or") {
            self.bump()?;
            left = Expr::Or(Box::new(left), Box::new(self.and(depth)?));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Expr, ParseError> {
        let mut left = self.unary(depth)?;
        while self.keyword("and") {
            self.bump()?;
            left = Expr::And(Box::new(left), Box::new(self.unary(depth)?));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, ParseError> {
        if depth > MAX_DEPTH {
            return Err(error(
                self.lexer.src,
                self.at,
                "the condition is nested too deeply",
            ));
        }
        if self.token == Token::Not {
            self.bump()?;
            return Ok(Expr::Not(Box::new(self.unary(depth + 1)?)));
        }
        if self.token == Token::LParen {
            self.bump()?;
            let inner = self.or(depth + 1)?;
            if self.token != Token::RParen {
                return Err(self.unexpected("`)`"));
            }
            self.bump()?;
            return Ok(inner);
        }
        if let Token::Name(name) = &self.token
            && matches!(name.as_str(), "contains" | "match" | "exists")
        {
            let name = name.clone();
            self.bump()?;
            if self.token == Token::LParen {
                return self.call(&name);
            }
            // A field that happens to be called `contains`: fall through to a comparison.
            return self.comparison(Operand::Path(vec![name]));
        }
        let left = self.operand()?;
        self.comparison(left)
    }

    fn call(&mut self, name: &str) -> Result<Expr, ParseError> {
        self.bump()?; // (
        let path = match &self.token {
            Token::Name(n) => path_of(n),
            _ => return Err(self.unexpected("a field path such as properties.name")),
        };
        self.bump()?;
        if name == "exists" {
            if self.token != Token::RParen {
                return Err(self.unexpected("`)`"));
            }
            self.bump()?;
            return Ok(Expr::Exists(path));
        }
        if self.token != Token::Comma {
            return Err(self.unexpected("`,`"));
        }
        self.bump()?;
        let Token::Str(arg) = &self.token else {
            return Err(self.unexpected("a string in quotes"));
        };
        let arg = arg.clone();
        self.bump()?;
        if self.token != Token::RParen {
            return Err(self.unexpected("`)`"));
        }
        self.bump()?;
        Ok(if name == "contains" {
            Expr::Contains(path, arg)
        } else {
            Expr::Match(path, arg)
        })
    }

    fn operand(&mut self) -> Result<Operand, ParseError> {
        let operand = match &self.token {
            Token::Str(s) => Operand::Literal(Value::String(s.clone())),
            Token::Num(n) => Operand::Literal(
                serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
            ),
            Token::Name(n) if n == "true" => Operand::Literal(Value::Bool(true)),
            Token::Name(n) if n == "false" => Operand::Literal(Value::Bool(false)),
            Token::Name(n) if n == "null" => Operand::Literal(Value::Null),
            Token::Name(n) if n == "and" || n == "or" => {
                return Err(self.unexpected("a field or a value"));
            }
            Token::Name(n) => Operand::Path(path_of(n)),
            _ => return Err(self.unexpected("a field or a value")),
        };
        self.bump()?;
        Ok(operand)
    }

    fn comparison(&mut self, left: Operand) -> Result<Expr, ParseError> {
        let Token::Op(op) = self.token else {
            return Err(self.unexpected("a comparison (=, !=, <, >, <=, >=)"));
        };
        self.bump()?;
        let right = self.operand()?;
        Ok(Expr::Compare(left, op, right))
    }
}

fn path_of(name: &str) -> Vec<String> {
    name.split('.').map(str::to_owned).collect()
}

/// The value at a path, or `Null`.
pub fn lookup<'v>(event: &'v Value, path: &[String]) -> &'v Value {
    static NULL: Value = Value::Null;
    let mut current = event;
    for key in path {
        current = match current {
            Value::Object(map) => map.get(key).unwrap_or(&NULL),
            Value::Array(items) => key
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i))
                .unwrap_or(&NULL),
            _ => &NULL,
        };
    }
    current
}

fn operand_value<'v>(event: &'v Value, operand: &'v Operand) -> &'v Value {
    match operand {
        Operand::Path(path) => lookup(event, path),
        Operand::Literal(value) => value,
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn ordered(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Glob matching with `*` and `?`, iterative (no backtracking blow-up).
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

impl Expr {
    /// Evaluate against an event.
    pub fn eval(&self, event: &Value) -> bool {
        match self {
            Expr::Or(a, b) => a.eval(event) || b.eval(event),
            Expr::And(a, b) => a.eval(event) && b.eval(event),
            Expr::Not(a) => !a.eval(event),
            Expr::Compare(l, op, r) => {
                let (a, b) = (operand_value(event, l), operand_value(event, r));
                match op {
                    Op::Eq => equal(a, b),
                    Op::Ne => !equal(a, b),
                    Op::Lt => ordered(a, b).is_some_and(|o| o.is_lt()),
                    Op::Gt => ordered(a, b).is_some_and(|o| o.is_gt()),
                    Op::Le => ordered(a, b).is_some_and(|o| o.is_le()),
                    Op::Ge => ordered(a, b).is_some_and(|o| o.is_ge()),
                }
            }
            Expr::Contains(path, needle) => match lookup(event, path) {
                Value::String(s) => s.contains(needle.as_str()),
                Value::Array(items) => items.iter().any(|i| i.as_str() == Some(needle.as_str())),
                _ => false,
            },
            Expr::Match(path, pattern) => lookup(event, path)
                .as_str()
                .is_some_and(|s| glob(pattern, s)),
            Expr::Exists(path) => !lookup(event, path).is_null(),
        }
    }
}
