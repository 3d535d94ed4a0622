//! Key-by-key reads of a config node with a default per key, for a registered model's or
//! dataset's own settings (`ezflt::Config`) and the keys that pick a section's type
//! (`model.name`); ezflt's own sections are typed structs (`specs`).

use crate::config::{Node, Value};
use anyhow::Result;

/// A view of one mapping node in the job config, with its dotted path for messages.
#[derive(Clone)]
pub struct Cfg<'a> {
    node: &'a Node,
    path: String,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn describe(n: &Node) -> String {
    match &n.v {
        Value::Str(s) => format!("string '{s}'"),
        Value::Int(i) => format!("int {i}"),
        Value::Float(f) => format!("float {f}"),
        Value::Bool(b) => format!("bool {b}"),
        other => Node::bare(other.clone()).type_name().to_string(),
    }
}

impl<'a> Cfg<'a> {
    pub fn new(node: &'a Node, path: &str) -> Cfg<'a> {
        Cfg {
            node,
            path: path.to_string(),
        }
    }

    /// The node this view reads.
    pub fn node(&self) -> &'a Node {
        self.node
    }
    /// Its dotted path (`model`, `data`), for messages.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The raw child node, if present and not null.
    pub fn raw(&self, key: &str) -> Option<&'a Node> {
        match self.node.child(key) {
            Some(Node { v: Value::Null, .. }) | None => None,
            Some(n) => Some(n),
        }
    }

    /// A config error about `key`, naming where its value was set.
    pub fn err(&self, key: &str, msg: &str) -> anyhow::Error {
        let full = join(&self.path, key);
        let at = self
            .node
            .child(key)
            .and_then(|n| n.src.as_deref())
            .or(self.node.src.as_deref())
            .map(|s| format!(" (set at {s})"))
            .unwrap_or_default();
        anyhow::anyhow!("config key '{full}'{at}: {msg}")
    }

    fn bad(&self, key: &str, n: &Node, expected: &str, example: &str) -> anyhow::Error {
        let full = join(&self.path, key);
        self.err(
            key,
            &format!(
                "expected {expected}, got {}. Try e.g. `{full}={example}`",
                describe(n)
            ),
        )
    }

    /// A sub-mapping (`model`, `adv`); missing or null reads as empty (all defaults).
    pub fn sub(&self, key: &str) -> Result<Cfg<'a>> {
        static EMPTY: Node = Node {
            v: Value::Null,
            src: None,
        };
        match self.raw(key) {
            None => Ok(Cfg {
                node: &EMPTY,
                path: join(&self.path, key),
            }),
            Some(n) if n.as_map().is_some() => Ok(Cfg {
                node: n,
                path: join(&self.path, key),
            }),
            Some(n) => Err(self.bad(key, n, "a mapping", "{a: 1}")),
        }
    }

    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.raw(key) {
            None => Ok(None),
            Some(n) => match &n.v {
                Value::Int(i) => Ok(Some(*i as f64)),
                Value::Float(f) => Ok(Some(*f)),
                Value::Str(s) if s.trim().parse::<f64>().is_ok() => Ok(s.trim().parse().ok()),
                _ => Err(self.bad(key, n, "a number", "0.1")),
            },
        }
    }

    pub fn f64(&self, key: &str, default: f64) -> Result<f64> {
        Ok(self.opt_f64(key)?.unwrap_or(default))
    }

    /// A number that must be > 0 (learning rates, noise levels, radii).
    pub fn positive(&self, key: &str, default: f64) -> Result<f64> {
        let v = self.f64(key, default)?;
        if v.is_nan() || v <= 0.0 || !v.is_finite() {
            return Err(self.err(key, &format!("expected a positive number, got {v}")));
        }
        Ok(v)
    }

    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.raw(key) {
            None => Ok(None),
            Some(n) => match &n.v {
                Value::Int(i) if *i >= 0 => Ok(Some(*i as usize)),
                Value::Float(f) if *f >= 0.0 && f.fract() == 0.0 => Ok(Some(*f as usize)),
                _ => Err(self.bad(key, n, "a non-negative integer", "10")),
            },
        }
    }

    pub fn usize(&self, key: &str, default: usize) -> Result<usize> {
        Ok(self.opt_usize(key)?.unwrap_or(default))
    }

    /// An integer that must be >= 1 (sizes, counts).
    pub fn count(&self, key: &str, default: usize) -> Result<usize> {
        let v = self.usize(key, default)?;
        if v == 0 {
            return Err(self.err(key, "expected an integer >= 1, got 0"));
        }
        Ok(v)
    }

    pub fn bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.raw(key) {
            None => Ok(default),
            Some(n) => match &n.v {
                Value::Bool(b) => Ok(*b),
                _ => Err(self.bad(key, n, "true or false", "true")),
            },
        }
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<String>> {
        match self.raw(key) {
            None => Ok(None),
            Some(n) => match &n.v {
                Value::Str(s) => Ok(Some(s.clone())),
                Value::Int(i) => Ok(Some(i.to_string())),
                Value::Float(f) => Ok(Some(f.to_string())),
                Value::Bool(b) => Ok(Some(b.to_string())),
                _ => Err(self.bad(key, n, "a string", "name")),
            },
        }
    }

    pub fn str(&self, key: &str, default: &str) -> Result<String> {
        Ok(self.opt_str(key)?.unwrap_or_else(|| default.to_string()))
    }

    /// A string that must be one of `choices`.
    pub fn choice(&self, key: &str, default: &str, choices: &[&str]) -> Result<String> {
        let v = self.str(key, default)?;
        if !choices.contains(&v.as_str()) {
            let hint = crate::config::suggest::did_you_mean(&v, choices.iter().copied())
                .map(|s| format!(" Did you mean '{s}'?"))
                .unwrap_or_default();
            return Err(self.err(
                key,
                &format!(
                    "unknown value '{v}'; expected one of: {}.{hint}",
                    choices.join(", ")
                ),
            ));
        }
        Ok(v)
    }

    /// A list of positive integers (`widths: [64, 64]`); a single integer counts as a list of one.
    pub fn sizes(&self, key: &str, default: &[usize]) -> Result<Vec<usize>> {
        let Some(n) = self.raw(key) else {
            return Ok(default.to_vec());
        };
        let items: Vec<&Node> = match &n.v {
            Value::List(l) => l.iter().collect(),
            Value::Int(_) => vec![n],
            _ => return Err(self.bad(key, n, "a list of positive integers", "[64,64]")),
        };
        items
            .iter()
            .map(|i| match i.v {
                Value::Int(v) if v > 0 => Ok(v as usize),
                _ => Err(self.bad(key, n, "a list of positive integers", "[64,64]")),
            })
            .collect()
    }
}

/// `~` and `~/rest` become `$HOME` and `$HOME/rest`; anything else (`~user`, no HOME) is
/// returned unchanged.
pub fn expand_home(path: &str) -> String {
    let home = || std::env::var("HOME").ok().filter(|h| !h.is_empty());
    match path.strip_prefix('~') {
        Some("") => home().unwrap_or_else(|| path.to_string()),
        Some(rest) if rest.starts_with('/') => match home() {
            Some(h) => format!("{}{rest}", h.trim_end_matches('/')),
            None => path.to_string(),
        },
        _ => path.to_string(),
    }
}
