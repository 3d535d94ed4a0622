//! OmegaConf interpolation: `${a.b}`, relative `${..x}`, string splicing, and the
//! resolvers `oc.env`, `oc.select`, `oc.decode`, `oc.create`, `oc.dict.*`, `now`, `hydra`,
//! and `eval` (arithmetic, as Hydra users register it).

use super::node::{has_interpolation, py_str, split_path, Map, Node, Value};
use super::overrides::{parse_value, OvValue};
use super::suggest;
use anyhow::{anyhow, bail, Result};
use chrono::{DateTime, Local};
use std::cell::RefCell;

/// Resolution context: the whole config (with its `hydra` node) and the run's clock.
pub struct Resolver<'a> {
    pub root: &'a Node,
    pub now: DateTime<Local>,
    /// When true, `???` propagates as a value (for printing); when false it is an error.
    pub missing_ok: bool,
    stack: RefCell<Vec<String>>,
    /// Interpolations being resolved inside one another (nested `${..${..}}`, or a chain
    /// of keys each pointing to the next): bounded, as the resolver recurses.
    depth: std::cell::Cell<usize>,
}

/// Deepest nesting of interpolations; Python's OmegaConf stops near its recursion limit.
const MAX_DEPTH: usize = 200;

enum Part {
    Lit(String),
    Interp(String),
}

impl<'a> Resolver<'a> {
    pub fn new(root: &'a Node, now: DateTime<Local>, missing_ok: bool) -> Self {
        Resolver {
            root,
            now,
            missing_ok,
            stack: RefCell::new(Vec::new()),
            depth: std::cell::Cell::new(0),
        }
    }

    /// A fully resolved copy of the node at `path` (empty = root).
    pub fn resolve_path(&self, path: &[String]) -> Result<Node> {
        let node = self.lookup_raw(path)?;
        self.resolve_node(node, path)
    }

    /// Resolves `node`, which sits at `path`, and all of its children.
    pub fn resolve_node(&self, node: &Node, path: &[String]) -> Result<Node> {
        match &node.v {
            Value::Map(m) => {
                let mut out = Map::new();
                for (k, v) in m {
                    let mut p = path.to_vec();
                    p.push(k.clone());
                    out.insert(k.clone(), self.resolve_node(v, &p)?);
                }
                Ok(Node::new(Value::Map(out), node.src.clone()))
            }
            Value::List(l) => {
                let mut out = Vec::new();
                for (i, v) in l.iter().enumerate() {
                    let mut p = path.to_vec();
                    p.push(i.to_string());
                    out.push(self.resolve_node(v, &p)?);
                }
                Ok(Node::new(Value::List(out), node.src.clone()))
            }
            Value::Str(s) if has_interpolation(s) || s.contains("\\${") => {
                let key = path.join(".");
                if self.stack.borrow().contains(&key) {
                    let chain = self.stack.borrow().join(" -> ");
                    bail!(
                        "Interpolation cycle: {chain} -> {key}\n  (at {})\n  Break the cycle by giving one of these keys a plain value.",
                        node.src.as_deref().unwrap_or("config")
                    );
                }
                self.stack.borrow_mut().push(key);
                let r = self.resolve_string(s, path, node);
                self.stack.borrow_mut().pop();
                let mut r = r?;
                if r.src.is_none() {
                    r.src = node.src.clone();
                }
                Ok(r)
            }
            Value::Missing if !self.missing_ok => bail!(
                "Missing mandatory value: {}\n  (declared as ??? at {})\n  Set it on the command line, e.g. {}=<value>.",
                path.join("."),
                node.src.as_deref().unwrap_or("config"),
                path.join(".")
            ),
            _ => Ok(node.clone()),
        }
    }

    fn resolve_string(&self, s: &str, path: &[String], node: &Node) -> Result<Node> {
        let depth = self.depth.get() + 1;
        if depth > MAX_DEPTH {
            bail!(
                "interpolations nest more than {MAX_DEPTH} levels deep at '{}' ({})",
                path.join("."),
                node.src.as_deref().unwrap_or("config")
            );
        }
        self.depth.set(depth);
        let r = self.resolve_parts(s, path, node);
        self.depth.set(depth - 1);
        r
    }

    fn resolve_parts(&self, s: &str, path: &[String], node: &Node) -> Result<Node> {
        let parts = split_parts(s).map_err(|e| {
            anyhow!(
                "{e} in '{s}' at {}",
                node.src.as_deref().unwrap_or("config")
            )
        })?;
        if parts.len() == 1 {
            if let Part::Interp(inner) = &parts[0] {
                return self.eval(inner, path, node);
            }
        }
        let mut out = String::new();
        for p in parts {
            match p {
                Part::Lit(l) => out.push_str(&l),
                Part::Interp(inner) => {
                    let v = self.eval(&inner, path, node)?;
                    if matches!(v.v, Value::Missing) {
                        return Ok(Node::bare(Value::Missing));
                    }
                    out.push_str(&py_str(&v));
                }
            }
        }
        Ok(Node::bare(Value::Str(out)))
    }

    /// Evaluates the inside of one `${...}`.
    fn eval(&self, inner: &str, path: &[String], node: &Node) -> Result<Node> {
        // Nested interpolations in the key or resolver args are resolved first.
        let where_ = node.src.as_deref().unwrap_or("config");
        if let Some((name, args)) = split_resolver(inner) {
            let args = split_args(args);
            let vals = args
                .iter()
                .map(|a| self.eval_arg(a, path, node))
                .collect::<Result<Vec<_>>>()?;
            return self.call(&name, &args, vals, path, node);
        }
        let key = if has_interpolation(inner) {
            let r = self.resolve_string(inner, path, node)?;
            py_str(&r)
        } else {
            inner.trim().to_string()
        };
        let target = absolute(&key, path);
        let found = self.lookup_resolved(&target).map_err(|e| {
            anyhow!(
                "Interpolation key '{key}' not found (in '{}' at {where_})\n  {e}",
                path.join(".")
            )
        })?;
        if matches!(found.v, Value::Missing) {
            if self.missing_ok {
                return Ok(found);
            }
            bail!(
                "Missing mandatory value: {} (needed by '{}' at {where_})\n  Set it on the command line, e.g. {}=<value>.",
                target.join("."),
                path.join("."),
                target.join(".")
            );
        }
        Ok(found)
    }

    fn eval_arg(&self, a: &str, path: &[String], node: &Node) -> Result<Node> {
        let t = a.trim();
        if (t.starts_with('\'') && t.ends_with('\'') || t.starts_with('"') && t.ends_with('"'))
            && t.len() >= 2
        {
            let inner = &t[1..t.len() - 1];
            if has_interpolation(inner) {
                let r = self.resolve_string(inner, path, node)?;
                return Ok(Node::bare(Value::Str(py_str(&r))));
            }
            return Ok(Node::str(inner));
        }
        if has_interpolation(t) {
            return self.resolve_string(t, path, node);
        }
        match parse_value(t) {
            Ok(OvValue::Elem(e)) => Ok(e.to_node(&None)),
            _ => Ok(Node::str(t)),
        }
    }

    fn call(
        &self,
        name: &str,
        raw: &[String],
        vals: Vec<Node>,
        path: &[String],
        node: &Node,
    ) -> Result<Node> {
        let where_ = node.src.as_deref().unwrap_or("config");
        let arg_str = |i: usize| vals.get(i).map(py_str).unwrap_or_default();
        match name {
            "oc.env" => {
                if vals.is_empty() {
                    bail!("oc.env needs a variable name (at {where_})");
                }
                let var = arg_str(0);
                match std::env::var(&var) {
                    Ok(v) => Ok(Node::str(v)),
                    Err(_) => match vals.get(1) {
                        Some(d) if matches!(d.v, Value::Null) => Ok(Node::bare(Value::Null)),
                        Some(d) => Ok(Node::str(py_str(d))),
                        None => bail!(
                            "Environment variable '{var}' not found (needed by '{}' at {where_})\n  Export it, or give a default: ${{oc.env:{var},<default>}}.",
                            path.join(".")
                        ),
                    },
                }
            }
            "oc.select" | "oc.deprecated" => {
                let key = raw.first().map(|s| s.trim().to_string()).unwrap_or_default();
                let target = absolute(&key, path);
                match self.lookup_resolved(&target) {
                    Ok(n) if !matches!(n.v, Value::Missing) => Ok(n),
                    _ => Ok(vals.get(1).cloned().unwrap_or(Node::bare(Value::Null))),
                }
            }
            "oc.decode" => {
                let s = arg_str(0);
                match vals.first().map(|v| &v.v) {
                    Some(Value::Null) => Ok(Node::bare(Value::Null)),
                    _ => match parse_value(&s) {
                        Ok(OvValue::Elem(e)) => {
                            let n = e.to_node(&None);
                            self.resolve_node(&n, path)
                        }
                        _ => bail!("oc.decode could not decode '{s}' (at {where_})"),
                    },
                }
            }
            "oc.create" => match vals.into_iter().next() {
                Some(n) if n.is_container() => Ok(n),
                Some(Node { v: Value::Str(s), .. }) => super::yaml::load(&s, "oc.create"),
                _ => bail!("oc.create needs a mapping, list or YAML string (at {where_})"),
            },
            "oc.dict.keys" | "oc.dict.values" => {
                let key = arg_str(0);
                let target = absolute(&key, path);
                let n = self.lookup_resolved(&target)?;
                let Value::Map(m) = n.v else {
                    bail!("{name} needs a mapping, '{key}' is not one (at {where_})");
                };
                let items = if name == "oc.dict.keys" {
                    m.keys().map(|k| Node::str(k.clone())).collect()
                } else {
                    m.into_values().collect()
                };
                Ok(Node::bare(Value::List(items)))
            }
            "now" => {
                let fmt = raw.join(",");
                Ok(Node::str(strftime(&self.now, fmt.trim())))
            }
            "hydra" => {
                let key = arg_str(0);
                let mut target = vec!["hydra".to_string()];
                target.extend(split_path(&key));
                self.lookup_resolved(&target).map_err(|e| anyhow!("${{hydra:{key}}}: {e} (at {where_})"))
            }
            // Not built into Hydra: the resolver its users register most
            // (`OmegaConf.register_new_resolver("eval", eval)`), for values computed from
            // others; Python arithmetic only, never arbitrary code.
            "eval" => {
                let text = arg_str(0);
                match super::arith::eval(&text)
                    .map_err(|e| anyhow!("{e} (in '{}' at {where_})", path.join(".")))?
                {
                    super::arith::Num::Int(i) => Ok(Node::bare(Value::Int(i))),
                    super::arith::Num::Float(x) => Ok(Node::bare(Value::Float(x))),
                }
            }
            other => bail!(
                "Unsupported interpolation type '{other}' (at {where_})\n  Available resolvers: oc.env, oc.select, oc.decode, oc.create, oc.deprecated, oc.dict.keys, oc.dict.values, now, hydra, eval."
            ),
        }
    }

    fn lookup_raw(&self, path: &[String]) -> Result<&'a Node> {
        let mut cur = self.root;
        for (i, seg) in path.iter().enumerate() {
            cur = match cur.child(seg) {
                Some(c) => c,
                None => return Err(not_found(cur, &path[..=i])),
            };
        }
        Ok(cur)
    }

    /// Walks `path`, resolving interpolations met on the way, and resolves the target.
    fn lookup_resolved(&self, path: &[String]) -> Result<Node> {
        let mut cur: Node = self.root.clone();
        let mut cur_path: Vec<String> = Vec::new();
        for (i, seg) in path.iter().enumerate() {
            let next = match cur.child(seg) {
                Some(c) => c.clone(),
                None => return Err(not_found(&cur, &path[..=i])),
            };
            cur_path.push(seg.clone());
            cur = if next.is_interpolation() && i + 1 < path.len() {
                self.resolve_node(&next, &cur_path)?
            } else {
                next
            };
        }
        self.resolve_node(&cur, path)
    }
}

fn not_found(parent: &Node, path: &[String]) -> anyhow::Error {
    let key = path.join(".");
    let last = path.last().cloned().unwrap_or_default();
    let hint = match &parent.v {
        Value::Map(m) => suggest::did_you_mean(&last, m.keys().map(|s| s.as_str()))
            .map(|s| {
                let mut p = path[..path.len() - 1].to_vec();
                p.push(s);
                format!(" Did you mean '{}'?", p.join("."))
            })
            .unwrap_or_default(),
        _ => String::new(),
    };
    anyhow!("Key '{key}' is not in the config.{hint}")
}

/// `.x` / `..x` relative to the node at `path`, else absolute.
fn absolute(key: &str, path: &[String]) -> Vec<String> {
    let dots = key.chars().take_while(|c| *c == '.').count();
    if dots == 0 {
        return split_path(key);
    }
    let base_len = path.len().saturating_sub(dots);
    let mut out = path[..base_len].to_vec();
    out.extend(split_path(&key[dots..]));
    out
}

/// `name:args` when `inner` starts with a resolver name and a colon.
fn split_resolver(inner: &str) -> Option<(String, &str)> {
    let t = inner.trim_start();
    let end = t.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-'))?;
    if end == 0 || !t[end..].starts_with(':') {
        return None;
    }
    let name = &t[..end];
    if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return None;
    }
    Some((name.to_string(), &t[end + 1..]))
}

/// Splits resolver arguments on top-level commas (not inside `${}`, quotes or brackets).
fn split_args(s: &str) -> Vec<String> {
    if s.trim().is_empty() {
        return vec![];
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (Some(_), '\\') => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.push(c);
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (None, '{' | '[') => {
                depth += 1;
                cur.push(c);
            }
            (None, '}' | ']') => {
                depth -= 1;
                cur.push(c);
            }
            (None, ',') if depth == 0 => out.push(std::mem::take(&mut cur)),
            (None, c) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Splits a string into literal text and `${...}` bodies (nesting aware, `\${` escaped).
fn split_parts(s: &str) -> std::result::Result<Vec<Part>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' && chars.get(i + 1) == Some(&'$') && chars.get(i + 2) == Some(&'{') {
            lit.push_str("${");
            i += 3;
            continue;
        }
        if chars[i] == '$' && chars.get(i + 1) == Some(&'{') {
            let mut depth = 1;
            let mut j = i + 2;
            let mut quote: Option<char> = None;
            while j < chars.len() {
                let c = chars[j];
                match quote {
                    Some(q) if c == q => quote = None,
                    Some(_) => {}
                    None => match c {
                        '\'' | '"' => quote = Some(c),
                        '{' if j > 0 && chars[j - 1] == '$' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    },
                }
                j += 1;
            }
            if depth != 0 {
                return Err("unterminated interpolation '${'".into());
            }
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            parts.push(Part::Interp(chars[i + 2..j].iter().collect()));
            i = j + 1;
            continue;
        }
        lit.push(chars[i]);
        i += 1;
    }
    if !lit.is_empty() || parts.is_empty() {
        parts.push(Part::Lit(lit));
    }
    Ok(parts)
}

/// Python's strftime on the run's start time (chrono speaks the same % codes).
pub fn strftime(t: &DateTime<Local>, fmt: &str) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    if write!(s, "{}", t.format(fmt)).is_err() {
        return fmt.to_string();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::load;
    fn res(src: &str, key: &str) -> Result<Node> {
        let root = load(src, "t.yaml").unwrap();
        let r = Resolver::new(&root, Local::now(), false);
        r.resolve_path(&split_path(key))
    }
    fn s(src: &str, key: &str) -> String {
        py_str(&res(src, key).unwrap())
    }
    #[test]
    fn references() {
        assert_eq!(s("a: 1\nb: ${a}\n", "b"), "1");
        assert!(matches!(
            res("a: 1\nb: ${a}\n", "b").unwrap().v,
            Value::Int(1)
        ));
        assert_eq!(s("seed: 3\nname: run_${seed}\n", "name"), "run_3");
        assert_eq!(s("m:\n  w: 2\n  x: ${.w}\n", "m.x"), "2");
        assert_eq!(s("w: 5\nm:\n  x: ${..w}\n", "m.x"), "5");
        assert_eq!(s("k: b\nd:\n  b: 7\nv: ${d.${k}}\n", "v"), "7");
        assert_eq!(s("a: 0.001\nb: lr_${a}\n", "b"), "lr_0.001");
        assert_eq!(s("a: '\\${x}'\n", "a"), "${x}");
        assert_eq!(s("l: [1, 2]\nb: ${l.1}\n", "b"), "2");
    }
    #[test]
    fn deep_nesting_and_long_chains_are_errors_not_stack_overflows() {
        let deep = format!(
            "a: \"{}x{}\"\n",
            "${oc.select:".repeat(20_000),
            "}".repeat(20_000)
        );
        let e = res(&deep, "a").unwrap_err().to_string();
        assert!(e.contains("levels deep"), "{e}");
        let mut chain = String::from("k0: 1\n");
        for i in 1..5_000 {
            chain.push_str(&format!("k{i}: ${{k{}}}\n", i - 1));
        }
        let e = res(&chain, "k4999").unwrap_err().to_string();
        assert!(e.contains("levels deep"), "{e}");
        assert_eq!(s(&chain, "k150"), "1");
    }

    #[test]
    fn resolvers_and_errors() {
        std::env::set_var("EZFLT_TEST_VAR", "hello");
        assert_eq!(s("a: ${oc.env:EZFLT_TEST_VAR}\n", "a"), "hello");
        assert_eq!(s("a: ${oc.env:EZFLT_SURELY_UNSET,dflt}\n", "a"), "dflt");
        assert!(res("a: ${oc.env:EZFLT_SURELY_UNSET}\n", "a").is_err());
        assert_eq!(s("x: 1\na: ${oc.select:y,5}\n", "a"), "5");
        assert_eq!(s("x: 1\na: ${oc.select:x,5}\n", "a"), "1");
        assert_eq!(s("a: ${oc.decode:'[1,2]'}\n", "a"), "[1, 2]");
        let e = res("a: ${b}\nb: ${a}\n", "a").unwrap_err().to_string();
        assert!(e.contains("cycle"), "{e}");
        let e = res("model:\n  width: 3\na: ${model.widht}\n", "a")
            .unwrap_err()
            .to_string();
        assert!(e.contains("model.width"), "{e}");
        let e = res("a: ???\nb: ${a}\n", "b").unwrap_err().to_string();
        assert!(e.contains("Missing mandatory value: a"), "{e}");
    }

    #[test]
    fn eval_computes_from_other_values() {
        let cfg = "model:\n  width: 200\n  scale: 30\nlr: ${eval:'${model.width} / (2 * max(1, ${model.scale}**2))'}\nw2: ${eval:'${model.width} * 2'}\n";
        assert_eq!(s(cfg, "lr"), (200.0f64 / 1800.0).to_string());
        assert_eq!(s(cfg, "w2"), "400");
        let e = res("a: ${eval:'2 +'}\n", "a").unwrap_err().to_string();
        assert!(e.contains("expected") && e.contains("'a'"), "{e}");
    }
}
