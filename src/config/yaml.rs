//! YAML in and out with OmegaConf's rules: PyYAML's YAML 1.1 typing on load (minus
//! timestamps, plus `1e-3` floats) and PyYAML's block style with OmegaConf's quoting on dump.

use super::node::{py_float_repr, Map, Node, Value};
use anyhow::{bail, Result};
use std::collections::HashMap;
use std::sync::Arc;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Parses one YAML document into a tree; `origin` names the file in every node's source.
pub fn load(text: &str, origin: &str) -> Result<Node> {
    let mut b = Builder {
        origin: origin.to_string(),
        stack: Vec::new(),
        root: None,
        anchors: HashMap::new(),
        err: None,
        docs: 0,
    };
    let mut p = Parser::new_from_str(text);
    if let Err(e) = p.load(&mut b, true) {
        let m = e.marker();
        bail!(
            "{origin}:{}:{}: invalid YAML: {}\n  Check the indentation and quoting on that line.",
            m.line(),
            m.col() + 1,
            e.info()
        );
    }
    if let Some(e) = b.err {
        bail!(e);
    }
    Ok(b.root.unwrap_or_else(|| Node::bare(Value::Null)))
}

enum Frame {
    Seq(Vec<Node>, usize, Marker),
    Map(Map, Option<(String, usize)>, usize, Marker, Vec<Node>),
}

struct Builder {
    origin: String,
    stack: Vec<Frame>,
    root: Option<Node>,
    anchors: HashMap<usize, Node>,
    err: Option<String>,
    docs: usize,
}

impl Builder {
    fn src(&self, m: &Marker) -> Option<Arc<str>> {
        Some(Arc::from(format!("{}:{}", self.origin, m.line())))
    }
    fn push_value(&mut self, node: Node, anchor: usize, mark: Marker, key_scalar: Option<String>) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq(v, _, _)) => v.push(node),
            Some(Frame::Map(m, pending, _, _, merges)) => match pending.take() {
                None => {
                    let key = match key_scalar {
                        Some(k) => k,
                        None => {
                            self.err = Some(format!(
                                "{}:{}: a mapping key must be a plain value, not a list or mapping",
                                self.origin,
                                mark.line()
                            ));
                            String::new()
                        }
                    };
                    *pending = Some((key, mark.line()));
                }
                Some((key, line)) => {
                    if key == "<<" {
                        merges.push(node);
                    } else if m.contains_key(&key) {
                        self.err = Some(format!(
                            "{}:{line}: found duplicate key '{key}'\n  Each key may appear once per mapping; remove or rename one of them.",
                            self.origin
                        ));
                    } else {
                        let mut node = node;
                        node.src = Some(Arc::from(format!("{}:{line}", self.origin)));
                        m.insert(key, node);
                    }
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.err.is_some() {
            return;
        }
        match ev {
            Event::DocumentStart => {
                self.docs += 1;
                if self.docs > 1 {
                    self.err = Some(format!(
                        "{}:{}: a config file must hold one YAML document, found a second '---'",
                        self.origin,
                        mark.line()
                    ));
                }
            }
            Event::SequenceStart(a, _) => self.stack.push(Frame::Seq(Vec::new(), a, mark)),
            Event::MappingStart(a, _) => {
                self.stack
                    .push(Frame::Map(Map::new(), None, a, mark, Vec::new()))
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(v, a, m)) = self.stack.pop() {
                    let n = Node::new(Value::List(v), self.src(&m));
                    self.push_value(n, a, m, None);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(mut m, _, a, mk, merges)) = self.stack.pop() {
                    // `<<: *base` merge keys: explicit keys win over merged ones.
                    for mnode in merges {
                        let sources = match mnode.v {
                            Value::List(l) => l,
                            other => vec![Node::bare(other)],
                        };
                        for s in sources {
                            if let Value::Map(sm) = s.v {
                                for (k, v) in sm {
                                    m.entry(k).or_insert(v);
                                }
                            }
                        }
                    }
                    let n = Node::new(Value::Map(m), self.src(&mk));
                    self.push_value(n, a, mk, None);
                }
            }
            Event::Scalar(s, style, anchor, tag) => {
                let v = if let Some(t) = tag {
                    match (t.handle.as_str(), t.suffix.as_str()) {
                        ("tag:yaml.org,2002:", "str") | ("!!", "str") => Value::Str(s.clone()),
                        _ => resolve_plain(&s),
                    }
                } else if style == TScalarStyle::Plain {
                    resolve_plain(&s)
                } else {
                    Value::Str(s.clone())
                };
                let key = match &v {
                    Value::Null => "null".to_string(),
                    Value::Bool(b) => if *b { "True" } else { "False" }.to_string(),
                    Value::Float(f) => py_float_repr(*f),
                    Value::Int(i) => i.to_string(),
                    _ => s.clone(),
                };
                let n = Node::new(v, self.src(&mark));
                self.push_value(n, anchor, mark, Some(key));
            }
            Event::Alias(id) => {
                let n = self
                    .anchors
                    .get(&id)
                    .cloned()
                    .unwrap_or(Node::bare(Value::Null));
                self.push_value(n, 0, mark, None);
            }
            _ => {}
        }
    }
}

fn all_digits_us(s: &str, radix: u32) -> bool {
    !s.is_empty() && s.chars().all(|c| c == '_' || c.is_digit(radix))
}

/// PyYAML's implicit resolvers for a plain scalar, as OmegaConf's loader configures them.
pub fn resolve_plain(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "???" => return Value::Missing,
        _ => {}
    }
    if let Some(b) = yaml11_bool(s) {
        return Value::Bool(b);
    }
    if let Some(i) = yaml11_int(s) {
        return Value::Int(i);
    }
    if let Some(f) = omegaconf_float(s) {
        return Value::Float(f);
    }
    Value::Str(s.to_string())
}

pub fn yaml11_bool(s: &str) -> Option<bool> {
    match s {
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Some(true),
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

/// YAML 1.1 int: decimal, 0b, 0x, leading-0 octal, and sexagesimal `1:30`.
pub fn yaml11_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let clean = |x: &str| x.replace('_', "");
    let v: i64 = if let Some(b) = body.strip_prefix("0b") {
        if !all_digits_us(b, 2) {
            return None;
        }
        i64::from_str_radix(&clean(b), 2).ok()?
    } else if let Some(h) = body.strip_prefix("0x") {
        if !all_digits_us(h, 16) {
            return None;
        }
        i64::from_str_radix(&clean(h), 16).ok()?
    } else if body == "0" {
        0
    } else if let Some(o) = body.strip_prefix('0') {
        if !all_digits_us(o, 8) {
            return None;
        }
        i64::from_str_radix(&clean(o), 8).ok()?
    } else if body.contains(':') {
        let parts: Vec<&str> = body.split(':').collect();
        let first = parts[0];
        if first.is_empty()
            || !first.starts_with(|c: char| ('1'..='9').contains(&c))
            || !all_digits_us(first, 10)
        {
            return None;
        }
        let mut acc: i64 = clean(first).parse().ok()?;
        for p in &parts[1..] {
            if p.is_empty() || p.len() > 2 || !p.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let d: i64 = p.parse().ok()?;
            if d > 59 {
                return None;
            }
            acc = acc * 60 + d;
        }
        acc
    } else {
        if !body.starts_with(|c: char| ('1'..='9').contains(&c)) || !all_digits_us(body, 10) {
            return None;
        }
        clean(body).parse().ok()?
    };
    Some(if neg { -v } else { v })
}

/// OmegaConf's float resolver (YAML 1.1's, plus exponents without a dot).
pub fn omegaconf_float(s: &str) -> Option<f64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let sign = if neg { -1.0 } else { 1.0 };
    match body {
        ".inf" | ".Inf" | ".INF" => return Some(sign * f64::INFINITY),
        ".nan" | ".NaN" | ".NAN" if s == body => return Some(f64::NAN),
        _ => {}
    }
    if body.contains(':') {
        // sexagesimal float: 190:20:30.15
        let (ip, fp) = body.rsplit_once('.')?;
        let parts: Vec<&str> = ip.split(':').collect();
        if !parts[0].starts_with(|c: char| c.is_ascii_digit()) || !all_digits_us(parts[0], 10) {
            return None;
        }
        let mut acc: f64 = parts[0].replace('_', "").parse().ok()?;
        for p in &parts[1..] {
            if p.is_empty()
                || p.len() > 2
                || !p.chars().all(|c| c.is_ascii_digit())
                || p.parse::<u32>().ok()? > 59
            {
                return None;
            }
            acc = acc * 60.0 + p.parse::<f64>().ok()?;
        }
        if !fp.is_empty() && !all_digits_us(fp, 10) {
            return None;
        }
        let frac: f64 = format!("0.{}", fp.replace('_', "")).parse().unwrap_or(0.0);
        return Some(sign * (acc + frac));
    }
    let (mant, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    if let Some(e) = exp {
        let ed = e.strip_prefix(['-', '+']).unwrap_or(e);
        if ed.is_empty() || !ed.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
    }
    let ok_mant = if let Some((a, b)) = mant.split_once('.') {
        if a.is_empty() {
            // `.5`: a digit must follow, and an exponent needs an explicit sign
            !b.is_empty()
                && b.starts_with(|c: char| c.is_ascii_digit())
                && all_digits_us(b, 10)
                && exp.is_none_or(|e| e.starts_with(['-', '+']))
        } else {
            a.starts_with(|c: char| c.is_ascii_digit())
                && all_digits_us(a, 10)
                && (b.is_empty() || all_digits_us(b, 10))
        }
    } else {
        exp.is_some() && mant.starts_with(|c: char| c.is_ascii_digit()) && all_digits_us(mant, 10)
    };
    if !ok_mant {
        return None;
    }
    let cleaned = body.replace('_', "");
    let cleaned = if cleaned.starts_with('.') {
        format!("0{cleaned}")
    } else {
        cleaned
    };
    let cleaned = cleaned.replace(".e", ".0e").replace(".E", ".0E");
    cleaned.parse::<f64>().ok().map(|f| sign * f)
}

// ---------------------------------------------------------------- dumping

/// Dumps a tree as `OmegaConf.to_yaml` does (PyYAML block style, keys in order).
pub fn dump(n: &Node) -> String {
    let mut out = String::new();
    match &n.v {
        Value::Map(m) if !m.is_empty() => emit_map(m, 0, &mut out),
        Value::List(l) if !l.is_empty() => emit_list(l, 0, &mut out),
        _ => {
            out.push_str(&scalar_repr(n, false));
            out.push('\n');
        }
    }
    out
}

fn emit_map(m: &Map, indent: usize, out: &mut String) {
    let mut first = true;
    for (k, v) in m {
        if !first || indent > 0 {
            out.push_str(&" ".repeat(indent));
        }
        first = false;
        emit_entry(k, v, indent, out);
    }
}

/// Writes `key: value` where the cursor already sits at the key's column.
fn emit_entry(k: &str, v: &Node, indent: usize, out: &mut String) {
    out.push_str(&str_repr(k, true));
    out.push(':');
    match &v.v {
        Value::Map(m) if !m.is_empty() => {
            out.push('\n');
            emit_map(m, indent + 2, out);
        }
        Value::List(l) if !l.is_empty() => {
            out.push('\n');
            emit_list(l, indent, out);
        }
        _ => {
            out.push(' ');
            out.push_str(&scalar_repr(v, false));
            out.push('\n');
        }
    }
}

fn emit_list(l: &[Node], indent: usize, out: &mut String) {
    for item in l {
        out.push_str(&" ".repeat(indent));
        out.push_str("- ");
        match &item.v {
            Value::Map(m) if !m.is_empty() => {
                let mut first = true;
                for (k, v) in m {
                    if !first {
                        out.push_str(&" ".repeat(indent + 2));
                    }
                    first = false;
                    emit_entry(k, v, indent + 2, out);
                }
            }
            Value::List(inner) if !inner.is_empty() => {
                // PyYAML: `- - a` then the rest aligned under the inner dash.
                let mut s = String::new();
                emit_list(inner, indent + 2, &mut s);
                out.push_str(s.trim_start());
            }
            _ => {
                out.push_str(&scalar_repr(item, false));
                out.push('\n');
            }
        }
    }
}

/// One scalar (or empty container) as PyYAML writes it.
pub fn scalar_repr(n: &Node, key: bool) -> String {
    match &n.v {
        Value::Null => "null".into(),
        Value::Missing => "???".into(),
        Value::Bool(b) => if *b { "true" } else { "false" }.into(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => yaml_float(*f),
        Value::Str(s) => str_repr(s, key),
        Value::List(l) if l.is_empty() => "[]".into(),
        Value::Map(m) if m.is_empty() => "{}".into(),
        _ => to_flow(n),
    }
}

pub fn yaml_float(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            ".inf".into()
        } else {
            "-.inf".into()
        };
    }
    let r = py_float_repr(f);
    if !r.contains('.') && r.contains('e') {
        r.replacen('e', ".0e", 1)
    } else {
        r
    }
}

/// Flow style `{a: 1, b: [1, 2]}`, for values spliced into strings.
pub fn to_flow(n: &Node) -> String {
    match &n.v {
        Value::List(l) => format!("[{}]", l.iter().map(to_flow).collect::<Vec<_>>().join(", ")),
        Value::Map(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", str_repr(k, true), to_flow(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => scalar_repr(n, false),
    }
}

/// Would PyYAML's dumper (YAML 1.1 resolvers incl. timestamps) or OmegaConf's extra
/// check (`is_int`, `is_float`, YAML bool) read this plain string as something else?
fn looks_typed(s: &str) -> bool {
    // OmegaConf's YAML_BOOL_TYPES adds y/Y/n/N to PyYAML's bools.
    if matches!(
        s,
        "" | "~" | "null" | "Null" | "NULL" | "<<" | "=" | "???" | "y" | "Y" | "n" | "N"
    ) {
        return true;
    }
    if yaml11_bool(s).is_some() || yaml11_int(s).is_some() || omegaconf_float(s).is_some() {
        return true;
    }
    let t = s.trim();
    let pyish = t.replace('_', "");
    let valid_underscores = !t.starts_with('_') && !t.ends_with('_') && !t.contains("__");
    if valid_underscores && (pyish.parse::<i64>().is_ok() || py_float_parse(&pyish)) {
        return true;
    }
    is_timestamp(s)
}

fn py_float_parse(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    let l = l.trim_start_matches(['+', '-']);
    matches!(l, "inf" | "infinity" | "nan")
        || (s.parse::<f64>().is_ok() && !l.starts_with("inf") && !l.starts_with("nan"))
}

fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 8 {
        return false;
    }
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| i < b.len() && b[i].is_ascii_digit());
    digits(0..4) && b.get(4) == Some(&b'-') && b[5].is_ascii_digit()
}

/// PyYAML's choice between plain, single-quoted and double-quoted for a string.
pub fn str_repr(s: &str, key: bool) -> String {
    let special = s.chars().any(|c| {
        !(c == '\n'
            || c == '\t'
            || (' '..='~').contains(&c)
            || (c as u32 >= 0xA0 && c != '\u{FEFF}'))
    });
    let multiline = s.contains('\n');
    if special || multiline {
        return double_quoted(s);
    }
    if plain_allowed(s) && !looks_typed(s) && !(key && s.len() > 128) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "''"))
}

fn double_quoted(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            '\0' => o.push_str("\\0"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                o.push_str(&format!("\\x{:02X}", c as u32))
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// PyYAML's `analyze_scalar` for block context.
fn plain_allowed(s: &str) -> bool {
    if s.is_empty() {
        return false;
    }
    if s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    let chars: Vec<char> = s.chars().collect();
    if chars[0] == ' '
        || chars[chars.len() - 1] == ' '
        || chars[0] == '\t'
        || chars[chars.len() - 1] == '\t'
    {
        return false;
    }
    for (i, &c) in chars.iter().enumerate() {
        let followed_ws = chars.get(i + 1).is_none_or(|n| *n == ' ' || *n == '\t');
        let preceded_ws = i > 0 && (chars[i - 1] == ' ' || chars[i - 1] == '\t');
        if i == 0 {
            if "#,[]{}&*!|>'\"%@`".contains(c) {
                return false;
            }
            if (c == '?' || c == ':' || c == '-') && followed_ws {
                return false;
            }
        } else {
            if c == ':' && followed_ws {
                return false;
            }
            if c == '#' && preceded_ws {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    fn v(s: &str) -> Value {
        resolve_plain(s)
    }
    #[test]
    fn yaml11_typing_like_pyyaml() {
        assert!(matches!(v("yes"), Value::Bool(true)));
        assert!(matches!(v("off"), Value::Bool(false)));
        assert!(matches!(v("0x10"), Value::Int(16)));
        assert!(matches!(v("007"), Value::Int(7)));
        assert!(matches!(v("1_000"), Value::Int(1000)));
        assert!(matches!(v("1:30"), Value::Int(90)));
        assert!(matches!(v("1e-3"), Value::Float(f) if f == 1e-3));
        assert!(matches!(v("1."), Value::Float(f) if f == 1.0));
        assert!(matches!(v(".5"), Value::Float(f) if f == 0.5));
        assert!(matches!(v("-.inf"), Value::Float(f) if f == f64::NEG_INFINITY));
        assert!(matches!(v("2024-01-01"), Value::Str(_)));
        assert!(matches!(v("08"), Value::Str(_)));
        assert!(matches!(v("abc"), Value::Str(_)));
        assert!(matches!(v("~"), Value::Null));
    }
    #[test]
    fn dump_quotes_like_omegaconf() {
        assert_eq!(str_repr("yes", false), "'yes'");
        assert_eq!(str_repr("0x10", false), "'0x10'");
        assert_eq!(str_repr("12:30", false), "'12:30'");
        assert_eq!(str_repr("2024-01-01", false), "'2024-01-01'");
        assert_eq!(str_repr("1e-3", false), "'1e-3'");
        assert_eq!(str_repr("abc", false), "abc");
        assert_eq!(str_repr("a: b", false), "'a: b'");
        assert_eq!(str_repr("", false), "''");
        assert_eq!(str_repr("${a.b}", false), "${a.b}");
        assert_eq!(yaml_float(1e-5), "1.0e-05");
    }
    #[test]
    fn load_and_dump_round_trip() {
        let src = "a: 1\nb:\n  c: [1, 2]\n  d: {}\nl:\n- x: 1\n  'y': 2\n- - 1\n  - 2\n";
        let n = load(src, "t.yaml").unwrap();
        assert_eq!(
            dump(&n),
            "a: 1\nb:\n  c:\n  - 1\n  - 2\n  d: {}\nl:\n- x: 1\n  'y': 2\n- - 1\n  - 2\n"
        );
    }
    #[test]
    fn errors_name_file_and_line() {
        let e = load("a: 1\na: 2\n", "conf/x.yaml").unwrap_err().to_string();
        assert!(e.contains("conf/x.yaml:2"), "{e}");
        let e = load("a: [1\n", "conf/y.yaml").unwrap_err().to_string();
        assert!(e.contains("conf/y.yaml:"), "{e}");
    }
}
