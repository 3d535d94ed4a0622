//! Hydra 1.3's command-line override grammar: `[~|+|++]key[@pkg]=value`, with typed
//! primitives, quoting and escapes, containers, casts and sweeps.

use super::node::{py_float_repr, Map, Node, Value};
use anyhow::{anyhow, bail, Result};
use std::sync::Arc;

/// What an override does to the config (`key=`, `+key=`, `++key=`, `~key`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Change,
    Add,
    ForceAdd,
    Delete,
}

/// A parsed value element, keeping whether a string was quoted (Hydra renders it back).
#[derive(Clone, Debug, PartialEq)]
pub enum Elem {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Quoted(String, char),
    List(Vec<Elem>),
    Dict(Vec<(String, Elem)>),
}

/// Sweep values; only meaningful with `--multirun`.
#[derive(Clone, Debug, PartialEq)]
pub enum Sweep {
    Choice {
        items: Vec<Elem>,
        simple: bool,
        tags: Vec<String>,
    },
    Range {
        start: f64,
        stop: f64,
        step: f64,
        ints: bool,
        tags: Vec<String>,
    },
    Interval {
        start: f64,
        end: f64,
    },
    Glob {
        include: Vec<String>,
        exclude: Vec<String>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum OvValue {
    Elem(Elem),
    Sweep(Sweep),
}

#[derive(Clone, Debug)]
pub struct Override {
    pub kind: Kind,
    /// Dotted key or `/`-separated group path, without prefix or package.
    pub key: String,
    pub package: Option<String>,
    pub value: Option<OvValue>,
    pub input_line: String,
}

pub const FUNCTIONS: &[&str] = &[
    "bool", "choice", "float", "glob", "int", "interval", "range", "shuffle", "sort", "str", "tag",
];

impl Override {
    pub fn is_sweep(&self) -> bool {
        matches!(self.value, Some(OvValue::Sweep(_)))
    }
    pub fn is_hydra(&self) -> bool {
        self.key == "hydra" || self.key.starts_with("hydra.") || self.key.starts_with("hydra/")
    }
    /// `+key@pkg`: the key as Hydra's sweeper and defaults list identify it.
    pub fn key_element(&self) -> String {
        let prefix = match self.kind {
            Kind::Change => "",
            Kind::Add => "+",
            Kind::ForceAdd => "++",
            Kind::Delete => "~",
        };
        match &self.package {
            Some(p) => format!("{prefix}{}@{p}", self.key),
            None => format!("{prefix}{}", self.key),
        }
    }
    /// The single (non-sweep) value as a config node; quoted strings become plain strings.
    pub fn value_node(&self) -> Option<Node> {
        match &self.value {
            Some(OvValue::Elem(e)) => Some(e.to_node(&Some(Arc::from(format!(
                "command-line override '{}'",
                self.input_line
            ))))),
            _ => None,
        }
    }
    pub fn elem(&self) -> Option<&Elem> {
        match &self.value {
            Some(OvValue::Elem(e)) => Some(e),
            _ => None,
        }
    }
    /// Hydra's `get_value_element_as_str` for a non-sweep override.
    pub fn value_str(&self) -> String {
        match &self.value {
            Some(OvValue::Elem(e)) => e.render(),
            None => "null".into(),
            Some(OvValue::Sweep(_)) => self
                .input_line
                .split_once('=')
                .map(|x| x.1.to_string())
                .unwrap_or_default(),
        }
    }
}

impl Elem {
    pub fn to_node(&self, src: &Option<Arc<str>>) -> Node {
        let v = match self {
            Elem::Null => Value::Null,
            Elem::Bool(b) => Value::Bool(*b),
            Elem::Int(i) => Value::Int(*i),
            Elem::Float(f) => Value::Float(*f),
            Elem::Str(s) if s == "???" => Value::Missing,
            Elem::Str(s) | Elem::Quoted(s, _) => Value::Str(s.clone()),
            Elem::List(l) => Value::List(l.iter().map(|e| e.to_node(src)).collect()),
            Elem::Dict(d) => {
                let mut m = Map::new();
                for (k, v) in d {
                    m.insert(k.clone(), v.to_node(src));
                }
                Value::Map(m)
            }
        };
        Node::new(v, src.clone())
    }
    /// Hydra's `_get_value_element_as_str`: how a job's override is written back.
    pub fn render(&self) -> String {
        match self {
            Elem::Null => "null".into(),
            Elem::Bool(b) => if *b { "True" } else { "False" }.into(),
            Elem::Int(i) => i.to_string(),
            Elem::Float(f) => py_float_repr(*f),
            Elem::Str(s) => escape_special(s),
            Elem::Quoted(s, q) => {
                let esc = s.replace(*q, &format!("\\{q}"));
                format!("{q}{esc}{q}")
            }
            Elem::List(l) => format!(
                "[{}]",
                l.iter().map(|e| e.render()).collect::<Vec<_>>().join(",")
            ),
            Elem::Dict(d) => format!(
                "{{{}}}",
                d.iter()
                    .map(|(k, v)| format!("{}:{}", escape_special(k), v.render()))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
    fn unquote(self) -> Elem {
        match self {
            Elem::Quoted(s, _) => Elem::Str(s),
            Elem::List(l) => Elem::List(l.into_iter().map(Elem::unquote).collect()),
            Elem::Dict(d) => Elem::Dict(d.into_iter().map(|(k, v)| (k, v.unquote())).collect()),
            e => e,
        }
    }
}

const ESC_CHARS: &str = "\\()[]{}:=, \t";

fn escape_special(s: &str) -> String {
    let mut o = String::new();
    for c in s.chars() {
        if ESC_CHARS.contains(c) {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

/// Parses one command-line override.
pub fn parse(line: &str) -> Result<Override> {
    let err = |msg: &str| -> anyhow::Error {
        anyhow!(
            "Error parsing override '{line}': {msg}\n  Overrides look like key=value, +key=value, ++key=value, ~key or group=option; quote values holding special characters, e.g. 'key=\"a,b\"'."
        )
    };
    let (kind, rest) = if let Some(r) = line.strip_prefix("++") {
        (Kind::ForceAdd, r)
    } else if let Some(r) = line.strip_prefix('+') {
        (Kind::Add, r)
    } else if let Some(r) = line.strip_prefix('~') {
        (Kind::Delete, r)
    } else {
        (Kind::Change, line)
    };
    let (keypart, valpart) = match rest.find('=') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let keypart = keypart.trim();
    if keypart.is_empty() {
        return Err(err("the key is empty"));
    }
    let (key, package) = match keypart.split_once('@') {
        Some((k, p)) => (k, Some(p.to_string())),
        None => (keypart, None),
    };
    validate_key(key).map_err(|m| err(&m))?;
    if let Some(p) = &package {
        if !p.is_empty() {
            validate_key(p).map_err(|m| err(&format!("bad package '{p}': {m}")))?;
        }
    }
    let value = match valpart {
        None => {
            if kind != Kind::Delete {
                return Err(err("missing '=' (only ~key may omit a value)"));
            }
            None
        }
        Some(v) if kind == Kind::Delete && v.trim().is_empty() => None,
        Some(v) => Some(parse_value(v).map_err(|m| err(&m))?),
    };
    Ok(Override {
        kind,
        key: key.to_string(),
        package,
        value,
        input_line: line.to_string(),
    })
}

fn validate_key(key: &str) -> std::result::Result<(), String> {
    let k = key.strip_prefix('/').unwrap_or(key);
    for seg in k.split(['.', '/']) {
        let ok = !seg.is_empty()
            && (seg.chars().all(|c| c.is_ascii_digit())
                || (seg.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == '$')
                    && seg
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '-')));
        if !ok {
            return Err(format!("invalid key '{key}' (segments are letters, digits, '_', '-', '$', joined by '.' or '/')"));
        }
    }
    Ok(())
}

/// Parses the value side of an override (everything after the first `=`).
pub fn parse_value(text: &str) -> std::result::Result<OvValue, String> {
    let mut p = P {
        s: text.chars().collect(),
        i: 0,
        depth: 0,
    };
    if p.s.iter().all(|c| *c == ' ' || *c == '\t') {
        return Ok(OvValue::Elem(Elem::Str(String::new())));
    }
    let first = p.item()?;
    p.ws();
    if p.peek() == Some(',') {
        let mut items = vec![into_elem(first)?];
        while p.peek() == Some(',') {
            p.i += 1;
            items.push(into_elem(p.item()?)?);
            p.ws();
        }
        p.end()?;
        return Ok(OvValue::Sweep(Sweep::Choice {
            items,
            simple: true,
            tags: vec![],
        }));
    }
    p.end()?;
    Ok(first)
}

fn into_elem(v: OvValue) -> std::result::Result<Elem, String> {
    match v {
        OvValue::Elem(e) => Ok(e),
        OvValue::Sweep(_) => Err("a sweep cannot be an element of a list of choices".into()),
    }
}

struct P {
    s: Vec<char>,
    i: usize,
    /// Nesting of lists, dicts and calls so far: the parser recurses, so a value nested
    /// thousands deep would overflow the stack instead of getting an error.
    depth: usize,
}

/// Deepest nesting of lists, dicts and function calls an override value may have.
const MAX_DEPTH: usize = 64;

type R<T> = std::result::Result<T, String>;

impl P {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(' ') | Some('\t')) {
            self.i += 1;
        }
    }
    fn end(&mut self) -> R<()> {
        self.ws();
        match self.peek() {
            None => Ok(()),
            Some(c) => Err(format!("unexpected '{c}' at position {}", self.i + 1)),
        }
    }
    fn expect(&mut self, c: char) -> R<()> {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(match self.peek() {
                Some(x) => format!("expected '{c}' but found '{x}' at position {}", self.i + 1),
                None => format!("expected '{c}' but the value ended"),
            })
        }
    }

    /// element | function call (which may yield a sweep)
    fn item(&mut self) -> R<OvValue> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!(
                "the value nests lists, dicts or calls more than {MAX_DEPTH} levels deep"
            ));
        }
        let v = self.item_at_depth();
        self.depth -= 1;
        v
    }

    fn item_at_depth(&mut self) -> R<OvValue> {
        self.ws();
        // function call: ID '(' ...
        let start = self.i;
        let mut j = self.i;
        while j < self.s.len() && (self.s[j].is_ascii_alphanumeric() || self.s[j] == '_') {
            j += 1;
        }
        if j > start && (self.s[start].is_ascii_alphabetic() || self.s[start] == '_') {
            let mut k = j;
            while k < self.s.len() && (self.s[k] == ' ' || self.s[k] == '\t') {
                k += 1;
            }
            if self.s.get(k) == Some(&'(') {
                let name: String = self.s[start..j].iter().collect();
                self.i = k + 1;
                return self.call(&name);
            }
        }
        Ok(OvValue::Elem(self.elem(false)?))
    }

    fn elem(&mut self, dict_key_ctx: bool) -> R<Elem> {
        self.ws();
        match self.peek() {
            Some('[') => {
                self.i += 1;
                let mut l = Vec::new();
                self.ws();
                if self.peek() == Some(']') {
                    self.i += 1;
                    return Ok(Elem::List(l));
                }
                loop {
                    l.push(into_elem(self.item()?)?);
                    self.ws();
                    match self.peek() {
                        Some(',') => self.i += 1,
                        Some(']') => {
                            self.i += 1;
                            return Ok(Elem::List(l));
                        }
                        _ => return Err("unterminated list: expected ',' or ']'".into()),
                    }
                }
            }
            Some('{') => {
                self.i += 1;
                let mut d: Vec<(String, Elem)> = Vec::new();
                self.ws();
                if self.peek() == Some('}') {
                    self.i += 1;
                    return Ok(Elem::Dict(d));
                }
                loop {
                    let k = match self.elem(true)? {
                        Elem::Str(s) => s,
                        Elem::Int(i) => i.to_string(),
                        Elem::Float(f) => py_float_repr(f),
                        Elem::Bool(b) => if b { "True" } else { "False" }.into(),
                        Elem::Null => return Err("a dict key cannot be null".into()),
                        _ => return Err("dict keys must be unquoted strings".into()),
                    };
                    self.expect(':')?;
                    let v = into_elem(self.item()?)?;
                    if let Some(pos) = d.iter().position(|(kk, _)| *kk == k) {
                        d[pos].1 = v;
                    } else {
                        d.push((k, v));
                    }
                    self.ws();
                    match self.peek() {
                        Some(',') => self.i += 1,
                        Some('}') => {
                            self.i += 1;
                            return Ok(Elem::Dict(d));
                        }
                        _ => return Err("unterminated dict: expected ',' or '}'".into()),
                    }
                }
            }
            Some(q @ ('\'' | '"')) if !dict_key_ctx => self.quoted(q),
            _ => self.primitive(dict_key_ctx),
        }
    }

    fn quoted(&mut self, q: char) -> R<Elem> {
        self.i += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(format!("unterminated quoted string (missing closing {q})")),
                Some('\\') => {
                    let mut n = 0;
                    while self.peek() == Some('\\') {
                        n += 1;
                        self.i += 1;
                    }
                    if self.peek() == Some(q) {
                        if n % 2 == 1 {
                            out.push_str(&"\\".repeat(n / 2));
                            out.push(q);
                            self.i += 1;
                        } else {
                            out.push_str(&"\\".repeat(n / 2));
                            self.i += 1;
                            return Ok(Elem::Quoted(out, q));
                        }
                    } else {
                        out.push_str(&"\\".repeat(n));
                    }
                }
                Some(c) if c == q => {
                    self.i += 1;
                    return Ok(Elem::Quoted(out, q));
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }

    fn primitive(&mut self, dict_key_ctx: bool) -> R<Elem> {
        let mut raw = String::new(); // as typed, for token typing
        let mut val = String::new(); // escapes processed
        let mut trailing_ws_raw = 0usize; // unescaped trailing whitespace to trim
        while let Some(c) = self.peek() {
            match c {
                ',' | ']' | '}' | ')' => break,
                ':' if dict_key_ctx => break,
                '$' if self.s.get(self.i + 1) == Some(&'{') => {
                    let mut depth = 0;
                    loop {
                        let Some(ch) = self.peek() else {
                            return Err("unterminated interpolation '${'".into());
                        };
                        raw.push(ch);
                        val.push(ch);
                        self.i += 1;
                        if ch == '{' {
                            depth += 1;
                        } else if ch == '}' {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                    }
                    trailing_ws_raw = 0;
                }
                '\\' => {
                    let n = self.s.get(self.i + 1).copied();
                    match n {
                        Some(e) if ESC_CHARS.contains(e) => {
                            raw.push('\\');
                            raw.push(e);
                            val.push(e);
                            self.i += 2;
                        }
                        _ => {
                            raw.push('\\');
                            val.push('\\');
                            self.i += 1;
                        }
                    }
                    trailing_ws_raw = 0;
                }
                ' ' | '\t' => {
                    raw.push(c);
                    val.push(c);
                    self.i += 1;
                    trailing_ws_raw += 1;
                }
                // `~` and `^` are ezflt's additions to Hydra's set: bash passes
                // `data.path=~/data` and `model.activation='relu^2'` to us unquoted.
                c if c.is_ascii_alphanumeric() || "_-/+.$%*@?|:~^".contains(c) => {
                    raw.push(c);
                    val.push(c);
                    self.i += 1;
                    trailing_ws_raw = 0;
                }
                '(' => return Err("unexpected '(' (function names are: ".to_string() + &FUNCTIONS.join(", ") + ")"),
                c => {
                    return Err(format!(
                        "character '{c}' is not allowed in an unquoted value; quote the value ('...') or escape it with a backslash"
                    ))
                }
            }
        }
        for _ in 0..trailing_ws_raw {
            raw.pop();
            val.pop();
        }
        let raw_t = raw.trim_start();
        let lead = raw.len() - raw_t.len();
        let val = val[lead.min(val.len())..].to_string();
        if raw_t.is_empty() {
            return Err("expected a value".into());
        }
        Ok(type_token(raw_t).unwrap_or(Elem::Str(val)))
    }

    fn call(&mut self, name: &str) -> R<OvValue> {
        let mut args: Vec<OvValue> = Vec::new();
        let mut kwargs: Vec<(String, OvValue)> = Vec::new();
        self.ws();
        if self.peek() == Some(')') {
            self.i += 1;
        } else {
            loop {
                self.ws();
                // kwarg: ID '=' value
                let save = self.i;
                let mut j = self.i;
                while j < self.s.len() && (self.s[j].is_ascii_alphanumeric() || self.s[j] == '_') {
                    j += 1;
                }
                let mut k = j;
                while k < self.s.len() && self.s[k] == ' ' {
                    k += 1;
                }
                if j > save && self.s.get(k) == Some(&'=') {
                    let kw: String = self.s[save..j].iter().collect();
                    self.i = k + 1;
                    kwargs.push((kw, self.item()?));
                } else {
                    if !kwargs.is_empty() {
                        return Err(format!(
                            "in {name}(): positional argument after a named one"
                        ));
                    }
                    args.push(self.item()?);
                }
                self.ws();
                match self.peek() {
                    Some(',') => self.i += 1,
                    Some(')') => {
                        self.i += 1;
                        break;
                    }
                    _ => return Err(format!("unterminated call {name}(: expected ',' or ')'")),
                }
            }
        }
        apply_function(name, args, kwargs)
    }
}

/// Types a single token as Hydra's lexer would: INT, FLOAT, BOOL or NULL; else None.
fn type_token(t: &str) -> Option<Elem> {
    let lower = t.to_ascii_lowercase();
    if lower == "null" {
        return Some(Elem::Null);
    }
    if lower == "true" {
        return Some(Elem::Bool(true));
    }
    if lower == "false" {
        return Some(Elem::Bool(false));
    }
    let (sign, body) = match t.as_bytes().first()? {
        b'+' => (1.0, &t[1..]),
        b'-' => (-1.0, &t[1..]),
        _ => (1.0, t),
    };
    let bl = body.to_ascii_lowercase();
    if bl == "inf" {
        return Some(Elem::Float(sign * f64::INFINITY));
    }
    if bl == "nan" {
        return Some(Elem::Float(f64::NAN));
    }
    let is_uint = |s: &str| -> bool {
        s == "0" || (s.starts_with(|c: char| ('1'..='9').contains(&c)) && digits_us(s))
    };
    let digits_us = |s: &str| digits_us(s);
    if is_uint(body) {
        return body
            .replace('_', "")
            .parse::<i64>()
            .ok()
            .map(|i| Elem::Int(if sign < 0.0 { -i } else { i }));
    }
    // floats
    let (mant, exp) = match bl.find('e') {
        Some(i) => (&bl[..i], Some(&bl[i + 1..])),
        None => (bl.as_str(), None),
    };
    if let Some(e) = exp {
        let ed = e.strip_prefix(['+', '-']).unwrap_or(e);
        if ed.is_empty() || !ed.starts_with(|c: char| c.is_ascii_digit()) || !digits_us(ed) {
            return None;
        }
    }
    let point_float = |m: &str| -> bool {
        match m.split_once('.') {
            Some((a, b)) => {
                (a.is_empty() || is_uint(a))
                    && ((b.is_empty() && !a.is_empty())
                        || (b.starts_with(|c: char| c.is_ascii_digit()) && digits_us(b)))
            }
            None => false,
        }
    };
    let ok = point_float(mant) || (exp.is_some() && is_uint(mant));
    if !ok {
        return None;
    }
    let clean = bl.replace('_', "");
    let clean = if clean.starts_with('.') {
        format!("0{clean}")
    } else {
        clean
    };
    let clean = clean.replace(".e", ".0e");
    clean.parse::<f64>().ok().map(|f| Elem::Float(sign * f))
}

fn digits_us(s: &str) -> bool {
    !s.is_empty()
        && !s.ends_with('_')
        && !s.contains("__")
        && s.chars().all(|c| c.is_ascii_digit() || c == '_')
}

fn num(v: &OvValue, what: &str) -> R<(f64, bool)> {
    match v {
        OvValue::Elem(Elem::Int(i)) => Ok((*i as f64, true)),
        OvValue::Elem(Elem::Float(f)) => Ok((*f, false)),
        _ => Err(format!("{what} must be a number")),
    }
}

fn strs(v: &OvValue, what: &str) -> R<Vec<String>> {
    match v {
        OvValue::Elem(Elem::Str(s)) | OvValue::Elem(Elem::Quoted(s, _)) => Ok(vec![s.clone()]),
        OvValue::Elem(Elem::List(l)) => l
            .iter()
            .map(|e| match e {
                Elem::Str(s) | Elem::Quoted(s, _) => Ok(s.clone()),
                _ => Err(format!("{what} must hold strings")),
            })
            .collect(),
        _ => Err(format!("{what} must be a string or a list of strings")),
    }
}

fn apply_function(name: &str, args: Vec<OvValue>, kwargs: Vec<(String, OvValue)>) -> R<OvValue> {
    let kw = |k: &str| kwargs.iter().find(|(n, _)| n == k).map(|x| x.1.clone());
    for (k, _) in &kwargs {
        let allowed: &[&str] = match name {
            "range" => &["start", "stop", "step"],
            "interval" => &["start", "end"],
            "glob" => &["include", "exclude"],
            "sort" => &["list", "reverse"],
            "shuffle" => &["list", "seed"],
            "int" | "float" | "str" | "bool" => &["value"],
            "tag" => &["sweep"],
            _ => &[],
        };
        if !allowed.contains(&k.as_str()) {
            return Err(format!("{name}() got an unexpected keyword argument '{k}'"));
        }
    }
    // Several positional args to a cast/sort/shuffle form a simple choice sweep.
    let gather = |args: Vec<OvValue>, value: Option<OvValue>| -> R<OvValue> {
        if let Some(v) = value {
            return Ok(v);
        }
        match args.len() {
            0 => Err(format!("{name}() needs an argument")),
            1 => Ok(args.into_iter().next().expect("one")),
            _ => Ok(OvValue::Sweep(Sweep::Choice {
                items: args.into_iter().map(into_elem).collect::<R<Vec<_>>>()?,
                simple: true,
                tags: vec![],
            })),
        }
    };
    match name {
        "int" | "float" | "str" | "bool" => {
            let v = gather(args, kw("value"))?;
            cast_value(name, v)
        }
        "choice" => {
            if args.is_empty() {
                return Err("empty choice is not legal".into());
            }
            if args.len() == 1 {
                if let OvValue::Sweep(Sweep::Choice {
                    items,
                    simple: true,
                    tags,
                }) = &args[0]
                {
                    return Ok(OvValue::Sweep(Sweep::Choice {
                        items: items.clone(),
                        simple: false,
                        tags: tags.clone(),
                    }));
                }
            }
            let items = args
                .into_iter()
                .map(|a| into_elem(a).map(Elem::unquote))
                .collect::<R<Vec<_>>>()?;
            Ok(OvValue::Sweep(Sweep::Choice {
                items,
                simple: false,
                tags: vec![],
            }))
        }
        "range" => {
            let mut pos = args.iter();
            let a = pos.next().cloned().or(kw("start"));
            let b = pos.next().cloned().or(kw("stop"));
            let c = pos.next().cloned().or(kw("step"));
            let (start, stop) = match (a, b) {
                (Some(a), Some(b)) => (num(&a, "range start")?, num(&b, "range stop")?),
                (Some(a), None) => ((0.0, true), num(&a, "range stop")?),
                _ => return Err("range() needs a stop value".into()),
            };
            let step = match c {
                Some(c) => num(&c, "range step")?,
                None => (1.0, true),
            };
            if step.0 == 0.0 {
                return Err("range step cannot be zero".into());
            }
            Ok(OvValue::Sweep(Sweep::Range {
                start: start.0,
                stop: stop.0,
                step: step.0,
                ints: start.1 && stop.1 && step.1,
                tags: vec![],
            }))
        }
        "interval" => {
            let mut pos = args.iter();
            let a = pos
                .next()
                .cloned()
                .or(kw("start"))
                .ok_or("interval() needs start and end")?;
            let b = pos
                .next()
                .cloned()
                .or(kw("end"))
                .ok_or("interval() needs start and end")?;
            Ok(OvValue::Sweep(Sweep::Interval {
                start: num(&a, "interval start")?.0,
                end: num(&b, "interval end")?.0,
            }))
        }
        "glob" => {
            let mut pos = args.iter();
            let inc = pos
                .next()
                .cloned()
                .or(kw("include"))
                .ok_or("glob() needs an include pattern")?;
            let exc = pos.next().cloned().or(kw("exclude"));
            Ok(OvValue::Sweep(Sweep::Glob {
                include: strs(&inc, "glob include")?,
                exclude: match exc {
                    Some(e) => strs(&e, "glob exclude")?,
                    None => vec![],
                },
            }))
        }
        "sort" | "shuffle" => {
            let reverse = matches!(kw("reverse"), Some(OvValue::Elem(Elem::Bool(true))));
            let seed = match kw("seed") {
                Some(OvValue::Elem(Elem::Int(s))) => s as u64,
                _ => 0,
            };
            let v = gather(args, kw("list"))?;
            let order = |items: &mut Vec<Elem>| -> R<()> {
                if name == "sort" {
                    sort_elems(items)?;
                    if reverse {
                        items.reverse();
                    }
                } else {
                    shuffle(items, seed);
                }
                Ok(())
            };
            match v {
                OvValue::Elem(Elem::List(mut l)) => {
                    order(&mut l)?;
                    Ok(OvValue::Elem(Elem::List(l)))
                }
                OvValue::Sweep(Sweep::Choice {
                    mut items,
                    simple,
                    tags,
                }) => {
                    order(&mut items)?;
                    Ok(OvValue::Sweep(Sweep::Choice {
                        items,
                        simple,
                        tags,
                    }))
                }
                OvValue::Sweep(Sweep::Range {
                    start,
                    stop,
                    step,
                    ints,
                    tags,
                }) => {
                    let mut items = range_items(start, stop, step, ints);
                    order(&mut items)?;
                    Ok(OvValue::Sweep(Sweep::Choice {
                        items,
                        simple: false,
                        tags,
                    }))
                }
                // Hydra: a single plain value becomes a one-element list.
                OvValue::Elem(e) if !matches!(e, Elem::Dict(_)) => {
                    Ok(OvValue::Elem(Elem::List(vec![e])))
                }
                _ => Err(format!("{name}() takes a list or a sweep")),
            }
        }
        "tag" => {
            let mut args = args;
            let sweep = match kw("sweep") {
                Some(s) => s,
                None => args.pop().ok_or("tag() needs a sweep")?,
            };
            let new_tags = args
                .iter()
                .map(|a| strs(a, "tag").map(|v| v.join(",")))
                .collect::<R<Vec<_>>>()?;
            match sweep {
                OvValue::Sweep(Sweep::Choice {
                    items,
                    simple,
                    mut tags,
                }) => {
                    tags.extend(new_tags);
                    Ok(OvValue::Sweep(Sweep::Choice {
                        items,
                        simple,
                        tags,
                    }))
                }
                OvValue::Sweep(Sweep::Range {
                    start,
                    stop,
                    step,
                    ints,
                    mut tags,
                }) => {
                    tags.extend(new_tags);
                    Ok(OvValue::Sweep(Sweep::Range {
                        start,
                        stop,
                        step,
                        ints,
                        tags,
                    }))
                }
                _ => Err("tag() takes tags followed by a sweep".into()),
            }
        }
        other => Err(format!(
            "unknown function '{other}'. Available: {}",
            FUNCTIONS.join(", ")
        )),
    }
}

pub fn range_items(start: f64, stop: f64, step: f64, ints: bool) -> Vec<Elem> {
    let mut out = Vec::new();
    let mut i = 0u64;
    loop {
        let v = start + step * i as f64;
        if (step > 0.0 && v >= stop) || (step < 0.0 && v <= stop) || out.len() > 1_000_000 {
            break;
        }
        out.push(if ints {
            Elem::Int(v as i64)
        } else {
            Elem::Float(v)
        });
        i += 1;
    }
    out
}

fn sort_elems(items: &mut [Elem]) -> R<()> {
    let key = |e: &Elem| -> R<(u8, f64, String)> {
        match e {
            Elem::Int(i) => Ok((0, *i as f64, String::new())),
            Elem::Float(f) => Ok((0, *f, String::new())),
            Elem::Bool(b) => Ok((0, *b as i64 as f64, String::new())),
            Elem::Str(s) | Elem::Quoted(s, _) => Ok((1, 0.0, s.clone())),
            _ => Err("sort() works on numbers or strings".to_string()),
        }
    };
    let keys = items.iter().map(key).collect::<R<Vec<_>>>()?;
    if keys.iter().any(|k| k.0 != keys[0].0) {
        return Err("sort() cannot compare numbers with strings".into());
    }
    let mut idx: Vec<usize> = (0..items.len()).collect();
    idx.sort_by(|&a, &b| {
        keys[a]
            .1
            .total_cmp(&keys[b].1)
            .then_with(|| keys[a].2.cmp(&keys[b].2))
    });
    let sorted: Vec<Elem> = idx.iter().map(|&i| items[i].clone()).collect();
    items.clone_from_slice(&sorted);
    Ok(())
}

/// Deterministic Fisher-Yates (splitmix64), so `shuffle()` sweeps reproduce.
fn shuffle(items: &mut [Elem], seed: u64) {
    let mut s = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut next = || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for i in (1..items.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

fn cast_elem(name: &str, e: Elem) -> R<Elem> {
    Ok(match (name, e) {
        (_, Elem::List(l)) => Elem::List(
            l.into_iter()
                .map(|x| cast_elem(name, x))
                .collect::<R<_>>()?,
        ),
        (_, Elem::Dict(d)) => Elem::Dict(
            d.into_iter()
                .map(|(k, v)| cast_elem(name, v).map(|v| (k, v)))
                .collect::<R<_>>()?,
        ),
        ("int", Elem::Int(i)) => Elem::Int(i),
        ("int", Elem::Float(f)) => Elem::Int(f.trunc() as i64),
        ("int", Elem::Bool(b)) => Elem::Int(b as i64),
        ("int", Elem::Str(s) | Elem::Quoted(s, _)) => Elem::Int(
            s.trim()
                .replace('_', "")
                .parse()
                .map_err(|_| format!("cannot cast '{s}' to int"))?,
        ),
        ("float", Elem::Int(i)) => Elem::Float(i as f64),
        ("float", Elem::Float(f)) => Elem::Float(f),
        ("float", Elem::Bool(b)) => Elem::Float(b as i64 as f64),
        ("float", Elem::Str(s) | Elem::Quoted(s, _)) => match type_token(s.trim()) {
            Some(Elem::Int(i)) => Elem::Float(i as f64),
            Some(Elem::Float(f)) => Elem::Float(f),
            _ => return Err(format!("cannot cast '{s}' to float")),
        },
        ("str", Elem::Bool(b)) => Elem::Str(if b { "true" } else { "false" }.into()),
        ("str", Elem::Int(i)) => Elem::Str(i.to_string()),
        ("str", Elem::Float(f)) => Elem::Str(py_float_repr(f)),
        ("str", Elem::Str(s) | Elem::Quoted(s, _)) => Elem::Str(s),
        ("bool", Elem::Bool(b)) => Elem::Bool(b),
        ("bool", Elem::Int(i)) => Elem::Bool(i != 0),
        ("bool", Elem::Float(f)) => Elem::Bool(f != 0.0),
        ("bool", Elem::Str(s) | Elem::Quoted(s, _)) => match s.to_ascii_lowercase().as_str() {
            "true" => Elem::Bool(true),
            "false" => Elem::Bool(false),
            _ => return Err(format!("cannot cast '{s}' to bool")),
        },
        (_, Elem::Null) => return Err(format!("cannot cast null to {name}")),
        (n, e) => return Err(format!("cannot cast {e:?} to {n}")),
    })
}

fn cast_value(name: &str, v: OvValue) -> R<OvValue> {
    match v {
        OvValue::Elem(e) => Ok(OvValue::Elem(cast_elem(name, e)?)),
        OvValue::Sweep(Sweep::Choice {
            items,
            simple,
            tags,
        }) => Ok(OvValue::Sweep(Sweep::Choice {
            items: items
                .into_iter()
                .map(|e| cast_elem(name, e))
                .collect::<R<_>>()?,
            simple,
            tags,
        })),
        OvValue::Sweep(Sweep::Range {
            start,
            stop,
            step,
            ints,
            tags,
        }) => match name {
            "int" => Ok(OvValue::Sweep(Sweep::Range {
                start,
                stop,
                step,
                ints: true,
                tags,
            })),
            "float" => Ok(OvValue::Sweep(Sweep::Range {
                start,
                stop,
                step,
                ints: false,
                tags,
            })),
            _ => {
                let items = range_items(start, stop, step, ints)
                    .into_iter()
                    .map(|e| cast_elem(name, e))
                    .collect::<R<_>>()?;
                Ok(OvValue::Sweep(Sweep::Choice {
                    items,
                    simple: false,
                    tags,
                }))
            }
        },
        OvValue::Sweep(Sweep::Interval { .. }) if name == "str" || name == "bool" => {
            Err(format!("intervals cannot be cast to {name}"))
        }
        other => Ok(other),
    }
}

/// Rejects sweeps when not in multirun, with Hydra's wording plus what to do.
pub fn ensure_no_sweeps(ovs: &[Override]) -> Result<()> {
    for o in ovs {
        if let Some(OvValue::Sweep(s)) = &o.value {
            let what = match s {
                Sweep::Choice { simple: true, .. } => format!(
                    "Ambiguous value for argument '{}'\n  1. To use it as a list, use key=[value1,value2]\n  2. To use it as string, quote the value: key=\\'value1,value2\\'\n  3. To sweep over it, add --multirun to your command line",
                    o.input_line
                ),
                _ => format!(
                    "Sweep parameters '{}' requires --multirun\n  Add --multirun (-m) to run one job per value.",
                    o.input_line
                ),
            };
            bail!(what);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    fn e(v: &str) -> Elem {
        match parse_value(v).unwrap() {
            OvValue::Elem(e) => e,
            s => panic!("not an element: {s:?}"),
        }
    }
    #[test]
    fn typing_of_primitives() {
        assert_eq!(e("1e-3"), Elem::Float(1e-3));
        assert_eq!(e("1_000"), Elem::Int(1000));
        assert_eq!(e("+1"), Elem::Int(1));
        assert_eq!(e("0x10"), Elem::Str("0x10".into()));
        assert_eq!(e("007"), Elem::Str("007".into()));
        assert_eq!(e("yes"), Elem::Str("yes".into()));
        assert_eq!(e("TrUe"), Elem::Bool(true));
        assert_eq!(e("NULL"), Elem::Null);
        assert_eq!(e("12:30"), Elem::Str("12:30".into()));
        assert_eq!(e("2024-01-01"), Elem::Str("2024-01-01".into()));
        assert_eq!(e("1."), Elem::Float(1.0));
        assert_eq!(e(".5"), Elem::Float(0.5));
        assert_eq!(e("-inf"), Elem::Float(f64::NEG_INFINITY));
        assert_eq!(e("10abc"), Elem::Str("10abc".into()));
        assert_eq!(e(" a b "), Elem::Str("a b".into()));
        assert_eq!(e("c:\\foo"), Elem::Str("c:\\foo".into()));
        assert_eq!(e("a\\,b"), Elem::Str("a,b".into()));
        assert_eq!(e("$\\{a\\}"), Elem::Str("${a}".into()));
        assert_eq!(e("${a.b}_x"), Elem::Str("${a.b}_x".into()));
        assert_eq!(e(""), Elem::Str("".into()));
        // Beyond Hydra's grammar: what bash leaves of `~/x` and `'relu^2'`.
        assert_eq!(e("~/data/mnist"), Elem::Str("~/data/mnist".into()));
        assert_eq!(e("relu^2"), Elem::Str("relu^2".into()));
        // Deep nesting is an error, not a stack overflow.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_value(&deep).unwrap_err().contains("levels deep"));
        let deep = format!("{}1{}", "{a:".repeat(30_000), "}".repeat(30_000));
        assert!(parse_value(&deep).unwrap_err().contains("levels deep"));
        assert!(parse_value(&format!("{}{}", "[".repeat(20), "]".repeat(20))).is_ok());
    }
    #[test]
    fn quoted_and_containers() {
        assert_eq!(e("'42'"), Elem::Quoted("42".into(), '\''));
        assert_eq!(e("'a,b'"), Elem::Quoted("a,b".into(), '\''));
        assert_eq!(e(r"'it\'s'"), Elem::Quoted("it's".into(), '\''));
        assert_eq!(
            e("[a,'b c',[1]]"),
            Elem::List(vec![
                Elem::Str("a".into()),
                Elem::Quoted("b c".into(), '\''),
                Elem::List(vec![Elem::Int(1)])
            ])
        );
        assert_eq!(
            e("{k: v, a b: 1}"),
            Elem::Dict(vec![
                ("k".into(), Elem::Str("v".into())),
                ("a b".into(), Elem::Int(1))
            ])
        );
        assert_eq!(e("int(3.7)"), Elem::Int(3));
        assert_eq!(e("str(1)"), Elem::Str("1".into()));
        assert!(parse_value("bool('10')").is_err());
    }
    #[test]
    fn sweeps() {
        assert!(matches!(
            parse_value("a,b,c").unwrap(),
            OvValue::Sweep(Sweep::Choice { simple: true, .. })
        ));
        assert!(matches!(
            parse_value("choice(1)").unwrap(),
            OvValue::Sweep(Sweep::Choice { simple: false, .. })
        ));
        assert!(matches!(
            parse_value("range(1,4)").unwrap(),
            OvValue::Sweep(Sweep::Range { ints: true, .. })
        ));
        let OvValue::Sweep(Sweep::Choice { items, .. }) = parse_value("sort(3,1,2)").unwrap()
        else {
            panic!()
        };
        assert_eq!(items, vec![Elem::Int(1), Elem::Int(2), Elem::Int(3)]);
        let OvValue::Sweep(Sweep::Choice { items, .. }) =
            parse_value("choice(\"1\",\"2\")").unwrap()
        else {
            panic!()
        };
        assert_eq!(items[0].render(), "1");
        assert!(parse_value("foo(1)").is_err());
        assert!(matches!(
            parse_value("interval(0,1)").unwrap(),
            OvValue::Sweep(Sweep::Interval { .. })
        ));
    }
    #[test]
    fn keys_and_prefixes() {
        let o = parse("+model@m=mlp").unwrap();
        assert_eq!(
            (o.kind, o.key.as_str(), o.package.as_deref()),
            (Kind::Add, "model", Some("m"))
        );
        let o = parse("~a.b").unwrap();
        assert_eq!(o.key_element(), "~a.b");
        assert!(o.value.is_none());
        assert!(parse("=5").is_err());
        assert!(parse("a").is_err());
        assert!(parse("a=b=c").is_err());
        assert!(parse("a b=1").is_err());
        assert_eq!(parse("list.0=3").unwrap().key, "list.0");
    }
}
