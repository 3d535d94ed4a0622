//! Value types the settings structs in `specs` derive `Deserialize` with: numbers with their
//! range checked, lists that also take one value, and named choices with did-you-mean.
//! Their messages say what was expected; `config::de` adds the key and where it was set.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use std::fmt;

/// A number read from YAML, where `1e-3` (no dot) is a string under YAML 1.1's rules.
fn number<E: de::Error>(text: &str, expected: &str) -> Result<f64, E> {
    text.trim()
        .parse::<f64>()
        .map_err(|_| E::custom(format!("expected {expected}, got string '{text}'")))
}

/// A float with a range check; `what` is the message's "expected ..." text.
struct Float {
    what: &'static str,
    ok: fn(f64) -> bool,
}

impl<'de> Visitor<'de> for Float {
    type Value = f64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.what)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        if (self.ok)(v) {
            Ok(v)
        } else {
            Err(E::custom(format!("expected {}, got {v}", self.what)))
        }
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        self.visit_f64(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        self.visit_f64(v as f64)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        let x = number(v, self.what)?;
        self.visit_f64(x)
    }
}

macro_rules! float_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $ok:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub struct $name(pub f64);
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(Float { what: $what, ok: $ok }).map($name)
            }
        }
    };
}

float_type!(
    /// Any finite number.
    Number,
    "a number",
    f64::is_finite
);
float_type!(
    /// A number > 0 (learning rates, radii, timeouts).
    Positive,
    "a positive number",
    |v| v.is_finite() && v > 0.0
);
float_type!(
    /// A number >= 0 (noise levels, momentum, weight decay).
    NonNegative,
    "a number >= 0",
    |v| v.is_finite() && v >= 0.0
);
float_type!(
    /// A probability in [0, 1].
    Fraction,
    "a number in [0, 1]",
    |v| (0.0..=1.0).contains(&v)
);

/// A whole number with a lower bound; `2.0` counts, `2.5` does not.
struct Whole {
    min: u64,
    what: &'static str,
}

impl<'de> Visitor<'de> for Whole {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.what)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        if v >= self.min {
            Ok(v)
        } else {
            Err(E::custom(format!("expected {}, got {v}", self.what)))
        }
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        match u64::try_from(v) {
            Ok(u) => self.visit_u64(u),
            Err(_) => Err(E::custom(format!("expected {}, got {v}", self.what))),
        }
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        if v.fract() == 0.0 && v >= 0.0 && v < u64::MAX as f64 {
            self.visit_u64(v as u64)
        } else {
            Err(E::custom(format!("expected {}, got {v}", self.what)))
        }
    }
}

/// An integer >= 1 (sizes, counts, epochs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Count(pub usize);

impl<'de> serde::Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let what = "an integer >= 1";
        d.deserialize_any(Whole { min: 1, what })
            .map(|v| Count(v as usize))
    }
}

/// An integer >= 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Natural(pub usize);

impl<'de> serde::Deserialize<'de> for Natural {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let what = "a non-negative integer";
        d.deserialize_any(Whole { min: 0, what })
            .map(|v| Natural(v as usize))
    }
}

/// A random seed: an integer >= 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Seed(pub u64);

impl<'de> serde::Deserialize<'de> for Seed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let what = "a non-negative integer seed";
        d.deserialize_any(Whole { min: 0, what }).map(Seed)
    }
}

/// A list of sizes >= 1 (`widths: [64, 64]`); one integer counts as a list of one.
#[derive(Clone, Debug, PartialEq)]
pub struct Sizes(pub Vec<usize>);

const SIZES: &str = "a list of positive integers, e.g. [64,64]";

impl<'de> serde::Deserialize<'de> for Sizes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<usize>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(SIZES)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Vec<usize>, E> {
                let one = Whole {
                    min: 1,
                    what: SIZES,
                }
                .visit_u64(v)?;
                Ok(vec![one as usize])
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Vec<usize>, E> {
                let one = Whole {
                    min: 1,
                    what: SIZES,
                }
                .visit_i64(v)?;
                Ok(vec![one as usize])
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<usize>, A::Error> {
                let mut out = Vec::new();
                while let Some(Count(c)) = seq.next_element()? {
                    out.push(c);
                }
                Ok(out)
            }
        }
        d.deserialize_any(V).map(Sizes)
    }
}

/// A list of names (`layers: [hidden.weight, out.*]`); one string counts as a list of one,
/// and a number as its text (`tags: [2024, baseline]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Names(pub Vec<String>);

impl<'de> serde::Deserialize<'de> for Names {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<String>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of names, e.g. [a,b]")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<String>, E> {
                Ok(vec![v.to_string()])
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
                let mut out = Vec::new();
                while let Some(Text(s)) = seq.next_element()? {
                    out.push(s);
                }
                Ok(out)
            }
        }
        d.deserialize_any(V).map(Names)
    }
}

/// A string; a number or boolean is taken as its text (`device: 0` is `"0"`), as OmegaConf's
/// `str` fields do.
#[derive(Clone, Debug, PartialEq)]
pub struct Text(pub String);

impl<'de> serde::Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = String;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
                Ok(v.to_string())
            }
        }
        d.deserialize_any(V).map(Text)
    }
}

/// The message for a name that is not one of `choices`, with a did-you-mean.
pub fn unknown_choice(v: &str, choices: &[&str]) -> String {
    let hint = crate::config::suggest::did_you_mean(v, choices.iter().copied())
        .map(|s| format!(" Did you mean '{s}'?"))
        .unwrap_or_default();
    format!(
        "unknown value '{v}'; expected one of: {}.{hint}",
        choices.join(", ")
    )
}

/// An enum read from one of its names, with the same message `Cfg::choice` gives.
macro_rules! choice {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name { $($variant),+ }
        impl $name {
            pub const NAMES: &'static [&'static str] = &[$($text),+];
            #[allow(dead_code)]
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                // Checked inside the visitor, so the error carries this key's place.
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        write!(f, "one of: {}", $name::NAMES.join(", "))
                    }
                    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<$name, E> {
                        match s {
                            $($text => Ok($name::$variant),)+
                            _ => Err(E::custom($crate::run::typed::unknown_choice(s, $name::NAMES))),
                        }
                    }
                    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<$name, E> {
                        self.visit_str(&v.to_string())
                    }
                    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<$name, E> {
                        self.visit_str(&v.to_string())
                    }
                    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<$name, E> {
                        self.visit_str(&v.to_string())
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}
pub(crate) use choice;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::de::from_node;
    use serde::Deserialize;

    choice!(Dtype { F32 = "f32", F16 = "f16" });

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct S {
        n: Count,
        lr: Positive,
        p: Fraction,
        widths: Sizes,
        layers: Names,
        dtype: Dtype,
    }

    fn read(text: &str) -> Result<S, String> {
        let node = crate::config::yaml::load(text, "t.yaml").unwrap();
        from_node::<S>(&node, "m").map_err(|e| e.to_string())
    }

    #[test]
    fn values_are_checked_and_errors_say_what_was_expected() {
        let ok = "n: 2.0\nlr: 1e-3\np: 1\nwidths: 64\nlayers: a.weight\ndtype: f16\n";
        let s = read(ok).unwrap();
        assert_eq!((s.n, s.lr, s.p), (Count(2), Positive(1e-3), Fraction(1.0)));
        assert_eq!(s.widths, Sizes(vec![64]));
        assert_eq!(s.layers, Names(vec!["a.weight".into()]));
        assert_eq!(s.dtype, Dtype::F16);
        let bad = |from: &str, to: &str| read(&ok.replace(from, to)).unwrap_err();
        let e = bad("n: 2.0", "n: 0");
        assert!(
            e.contains("'m.n'") && e.contains("expected an integer >= 1, got 0"),
            "{e}"
        );
        assert!(bad("n: 2.0", "n: 2.5").contains("got 2.5"));
        let e = bad("lr: 1e-3", "lr: -1");
        assert!(e.contains("expected a positive number, got -1"), "{e}");
        assert!(bad("lr: 1e-3", "lr: fast").contains("got string 'fast'"));
        assert!(bad("p: 1", "p: 1.5").contains("in [0, 1], got 1.5"));
        let e = bad("widths: 64", "widths: [64, 0]");
        assert!(e.contains("'m.widths[1]'"), "{e}");
        let e = bad("dtype: f16", "dtype: f61");
        assert!(
            e.contains("'m.dtype'")
                && e.contains("expected one of: f32, f16.")
                && e.contains("Did you mean 'f16'?"),
            "{e}"
        );
    }
}
