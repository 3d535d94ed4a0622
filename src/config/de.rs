//! serde over a composed config node: settings structs derive `Deserialize`, and a wrong
//! type or an unknown key is reported with its dotted key, where it was set, and what was expected.

use super::node::{Node, Value};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use std::fmt;

/// Deserializes `node` (found at dotted `path`, e.g. `hydra.launcher`) into `T`.
pub fn from_node<T: DeserializeOwned>(node: &Node, path: &str) -> anyhow::Result<T> {
    T::deserialize(De {
        node,
        path: path.to_string(),
    })
    .map_err(|e| anyhow::anyhow!("{e}"))
}

/// A config error: the message, and the key and place it belongs to once known.
#[derive(Debug)]
pub struct Error {
    msg: String,
    key: Option<String>,
    src: Option<String>,
}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Error {
        Error {
            msg: msg.to_string(),
            key: None,
            src: None,
        }
    }
}

impl std::error::Error for Error {}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self
            .src
            .as_deref()
            .map(|s| format!(" (set at {s})"))
            .unwrap_or_default();
        match &self.key {
            Some(k) => write!(f, "config key '{k}'{at}: {}", self.msg),
            None => write!(f, "{}", self.msg),
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Gives an error without a place the key and source of `node`.
fn locate(mut e: Error, path: &str, node: &Node) -> Error {
    if e.key.is_none() {
        e.key = Some(path.to_string());
        e.src = node.src.as_deref().map(String::from);
    }
    e
}

/// serde's "unknown field `widht`, expected one of `name`, `widths`" gets "Did you mean
/// 'widths'?" when one of the fields is close.
fn did_you_mean(mut e: Error, key: &str) -> Error {
    if let Some((_, list)) = e.msg.split_once("expected one of ") {
        let fields: Vec<&str> = list.split(", ").map(|f| f.trim_matches('`')).collect();
        if let Some(s) = crate::config::suggest::did_you_mean(key, fields.iter().copied()) {
            e.msg = format!("{}. Did you mean '{s}'?", e.msg);
        }
    }
    e
}

struct De<'a> {
    node: &'a Node,
    path: String,
}

impl<'de> de::Deserializer<'de> for De<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let r = match &self.node.v {
            Value::Null => visitor.visit_unit(),
            Value::Missing => Err(de::Error::custom(
                "is ??? (mandatory) and was never set; set it on the command line",
            )),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::Float(x) => visitor.visit_f64(*x),
            Value::Str(s) => visitor.visit_str(s),
            Value::List(items) => visitor.visit_seq(Seq {
                items: items.iter().enumerate(),
                path: &self.path,
            }),
            Value::Map(m) => visitor.visit_map(MapAccess {
                entries: m.iter(),
                path: &self.path,
                value: None,
            }),
        };
        r.map_err(|e| locate(e, &self.path, self.node))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node.v {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match &self.node.v {
            Value::Str(s) => visitor
                .visit_enum(s.as_str().into_deserializer())
                .map_err(|e| locate(e, &self.path, self.node)),
            _ => self.deserialize_any(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

struct Seq<'a, I> {
    items: I,
    path: &'a str,
}

impl<'de, 'a, I: Iterator<Item = (usize, &'a Node)>> de::SeqAccess<'de> for Seq<'a, I> {
    type Error = Error;
    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.items.next() {
            None => Ok(None),
            Some((i, node)) => seed
                .deserialize(De {
                    node,
                    path: format!("{}[{i}]", self.path),
                })
                .map(Some),
        }
    }
}

struct MapAccess<'a, I> {
    entries: I,
    path: &'a str,
    value: Option<(String, &'a Node)>,
}

impl<'de, 'a, I: Iterator<Item = (&'a String, &'a Node)>> de::MapAccess<'de> for MapAccess<'a, I> {
    type Error = Error;
    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((key, node)) = self.entries.next() else {
            return Ok(None);
        };
        let path = join(self.path, key);
        // An unknown key is reported at the key, where the user set it.
        let k = seed
            .deserialize(key.as_str().into_deserializer())
            .map_err(|e| locate(did_you_mean(e, key), &path, node))?;
        self.value = Some((path, node));
        Ok(Some(k))
    }
    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let (path, node) = self
            .value
            .take()
            .ok_or_else(|| <Error as de::Error>::custom("a value without its key"))?;
        seed.deserialize(De { node, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct S {
        n: usize,
        x: f64,
        name: Option<String>,
        list: Vec<u32>,
        mode: Mode,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        Fast,
        Slow,
    }

    fn node(text: &str) -> Node {
        crate::config::yaml::load(text, "conf/s.yaml").unwrap()
    }

    #[test]
    fn typed_values_and_located_errors() {
        let s: S = from_node(
            &node("n: 3\nx: 2\nname: null\nlist: [1, 2]\nmode: slow\n"),
            "top",
        )
        .unwrap();
        assert_eq!(
            s,
            S {
                n: 3,
                x: 2.0,
                name: None,
                list: vec![1, 2],
                mode: Mode::Slow
            }
        );
        let err = |text: &str| from_node::<S>(&node(text), "top").unwrap_err().to_string();
        let e = err("n: '2:00:00'\nx: 1\nname: a\nlist: []\nmode: fast\n");
        assert!(
            e.starts_with("config key 'top.n' (set at conf/s.yaml:1"),
            "{e}"
        );
        assert!(e.contains("expected usize"), "{e}");
        let e = err("n: 1\nx: 1\nname: a\nlist: [1, -2]\nmode: fast\n");
        assert!(e.contains("'top.list[1]'") && e.contains("-2"), "{e}");
        let e = err("n: 1\nx: 1\nname: a\nlist: []\nmode: fast\nspeed: 3\n");
        assert!(
            e.contains("'top.speed'") && e.contains("unknown field `speed`"),
            "{e}"
        );
        let e = err("n: 1\nx: 1\nname: a\nlist: []\nmode: fast\nnmae: 3\n");
        assert!(
            e.contains("unknown field `nmae`") && e.ends_with("Did you mean 'name'?"),
            "{e}"
        );
        let e = err("n: 1\nx: 1\nname: a\nlist: []\nmode: quick\n");
        assert!(
            e.contains("'top.mode'") && e.contains("unknown variant `quick`"),
            "{e}"
        );
        let e = err("n: 1\nname: a\nlist: []\nmode: fast\n");
        assert!(
            e.contains("'top'") && e.contains("missing field `x`"),
            "{e}"
        );
    }
}
