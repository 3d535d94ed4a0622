//! The config tree: an ordered, typed value with the place it came from.
//! Plain data (no burn, no I/O) so every layer above can hold and print it.

use indexmap::IndexMap;
use std::sync::Arc;

/// Ordered mapping, as OmegaConf keeps keys in first-definition order.
pub type Map = IndexMap<String, Node>;

/// A config value. Strings holding `${...}` are interpolations, resolved lazily.
#[derive(Clone, Debug)]
pub enum Value {
    Null,
    /// OmegaConf's `???`: a mandatory value nobody has set yet.
    Missing,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Node>),
    Map(Map),
}

/// A value plus where it was set (`conf/model/mlp.yaml:3`, `override 'lr=1'`).
#[derive(Clone, Debug)]
pub struct Node {
    pub v: Value,
    pub src: Option<Arc<str>>,
}

impl Node {
    pub fn new(v: Value, src: Option<Arc<str>>) -> Node {
        Node { v, src }
    }
    pub fn bare(v: Value) -> Node {
        Node { v, src: None }
    }
    pub fn map() -> Node {
        Node::bare(Value::Map(Map::new()))
    }
    pub fn str(s: impl Into<String>) -> Node {
        Node::bare(Value::Str(s.into()))
    }
    pub fn as_map(&self) -> Option<&Map> {
        match &self.v {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }
    pub fn as_map_mut(&mut self) -> Option<&mut Map> {
        match &mut self.v {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match &self.v {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn is_container(&self) -> bool {
        matches!(self.v, Value::List(_) | Value::Map(_))
    }
    /// True when a string holds an (unescaped) `${`: OmegaConf treats it as an interpolation.
    pub fn is_interpolation(&self) -> bool {
        match &self.v {
            Value::Str(s) => has_interpolation(s),
            _ => false,
        }
    }

    /// Child lookup by one path segment (map key or list index).
    pub fn child(&self, seg: &str) -> Option<&Node> {
        match &self.v {
            Value::Map(m) => m.get(seg),
            Value::List(l) => seg.parse::<usize>().ok().and_then(|i| l.get(i)),
            _ => None,
        }
    }
    pub fn child_mut(&mut self, seg: &str) -> Option<&mut Node> {
        match &mut self.v {
            Value::Map(m) => m.get_mut(seg),
            Value::List(l) => seg.parse::<usize>().ok().and_then(|i| l.get_mut(i)),
            _ => None,
        }
    }
    /// Lookup by dotted path without resolving interpolations.
    pub fn get_path(&self, path: &str) -> Option<&Node> {
        let mut cur = self;
        for seg in split_path(path) {
            cur = cur.child(&seg)?;
        }
        Some(cur)
    }
    pub fn get_path_mut(&mut self, path: &str) -> Option<&mut Node> {
        let mut cur = self;
        for seg in split_path(path) {
            cur = cur.child_mut(&seg)?;
        }
        Some(cur)
    }

    /// Sets `path` to `value`, creating intermediate maps (used for `@package` embedding).
    pub fn set_path_create(&mut self, path: &str, value: Node) {
        let segs = split_path(path);
        let mut cur = self;
        for (i, seg) in segs.iter().enumerate() {
            if !matches!(cur.v, Value::Map(_)) {
                cur.v = Value::Map(Map::new());
            }
            let m = cur.as_map_mut().expect("just made a map");
            if i + 1 == segs.len() {
                m.insert(seg.clone(), value);
                return;
            }
            cur = m.entry(seg.clone()).or_insert_with(Node::map);
        }
        *cur = value;
    }

    /// Deep merge as OmegaConf.merge: maps merge key by key, everything else replaces,
    /// and a `???` in `src` never overwrites an existing value.
    pub fn merge_from(&mut self, src: Node) {
        match (&mut self.v, src.v) {
            (Value::Map(dst), Value::Map(srcm)) => {
                for (k, sv) in srcm {
                    match dst.get_mut(&k) {
                        Some(dv) => dv.merge_from(sv),
                        None => {
                            dst.insert(k, sv);
                        }
                    }
                }
            }
            (_, Value::Missing) => {}
            (_, v) => {
                self.v = v;
                self.src = src.src;
            }
        }
    }

    /// Python-style equality, as `~key=value` compares (1 == 1.0).
    pub fn value_eq(&self, other: &Node) -> bool {
        use Value::*;
        match (&self.v, &other.v) {
            (Null, Null) | (Missing, Missing) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (Float(a), Float(b)) => a == b,
            (Int(a), Float(b)) | (Float(b), Int(a)) => (*a as f64) == *b,
            (Bool(a), Int(b)) | (Int(b), Bool(a)) => (*a as i64) == *b,
            (Str(a), Str(b)) => a == b,
            (List(a), List(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.value_eq(y)),
            (Map(a), Map(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .all(|(k, v)| b.get(k).is_some_and(|w| v.value_eq(w)))
            }
            _ => false,
        }
    }

    /// Human name of the value kind, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self.v {
            Value::Null => "null",
            Value::Missing => "missing value (???)",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Map(_) => "mapping",
        }
    }
}

/// `a.b.0` -> [a, b, 0]; also accepts `a[0]` as OmegaConf does.
pub fn split_path(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in path.split('.') {
        if part.is_empty() {
            continue;
        }
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            if i > 0 {
                out.push(rest[..i].to_string());
            }
            rest = &rest[i..];
            while let Some(stripped) = rest.strip_prefix('[') {
                match stripped.find(']') {
                    Some(j) => {
                        out.push(stripped[..j].to_string());
                        rest = &stripped[j + 1..];
                    }
                    None => {
                        out.push(stripped.to_string());
                        rest = "";
                    }
                }
            }
        } else {
            out.push(rest.to_string());
        }
    }
    out
}

/// An unescaped `${` makes a string an interpolation.
pub fn has_interpolation(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == b'$' && b[i + 1] == b'{' {
            return true;
        }
        i += 1;
    }
    false
}

/// Python's `repr(float)`: shortest round-trip digits, scientific outside 1e-4..1e16.
pub fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    let sci = format!("{:e}", f); // e.g. "-1.2345e-5"
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if neg { "-" } else { "" };
    if !(-4..16).contains(&exp) {
        let m = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits.clone()
        };
        let es = if exp < 0 { "-" } else { "+" };
        return format!("{sign}{m}e{es}{:02}", exp.abs());
    }
    if exp >= 0 {
        let e = exp as usize;
        if digits.len() > e + 1 {
            format!("{sign}{}.{}", &digits[..e + 1], &digits[e + 1..])
        } else {
            format!("{sign}{}{}.0", digits, "0".repeat(e + 1 - digits.len()))
        }
    } else {
        let z = (-exp - 1) as usize;
        format!("{sign}0.{}{}", "0".repeat(z), digits)
    }
}

/// Python's `str()` of a scalar, used when a value is spliced into a string interpolation.
pub fn py_str(n: &Node) -> String {
    match &n.v {
        Value::Null => "None".into(),
        Value::Missing => "???".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => py_float_repr(*f),
        Value::Str(s) => s.clone(),
        Value::List(_) | Value::Map(_) => crate::config::yaml::to_flow(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn float_repr_matches_python() {
        assert_eq!(py_float_repr(0.001), "0.001");
        assert_eq!(py_float_repr(1e-5), "1e-05");
        assert_eq!(py_float_repr(1.0), "1.0");
        assert_eq!(py_float_repr(100.0), "100.0");
        assert_eq!(py_float_repr(1e16), "1e+16");
        assert_eq!(py_float_repr(1.5e16), "1.5e+16");
        assert_eq!(py_float_repr(123.456), "123.456");
        assert_eq!(py_float_repr(-0.5), "-0.5");
        assert_eq!(py_float_repr(0.0001), "0.0001");
        assert_eq!(py_float_repr(1e15), "1000000000000000.0");
    }
    #[test]
    fn paths_split() {
        assert_eq!(split_path("a.b[0].c"), vec!["a", "b", "0", "c"]);
        assert_eq!(split_path("a.0"), vec!["a", "0"]);
    }
}
