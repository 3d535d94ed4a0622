//! The `${eval:'...'}` resolver's arithmetic: the subset of Python expressions Hydra users
//! register `eval` for (`lr: ${eval:'${model.width} / max(1, ${model.scale}**2)'}`).

use anyhow::{bail, Result};

/// A Python number: ints stay ints (`2 * 3` is 6) until `/` or a float makes them floats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn f(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(x) => x,
        }
    }
}

/// Evaluates `+ - * / // % **`, parentheses, numbers, `True`/`False` and the functions
/// `min`, `max`, `abs`, `round`, `int`, `float` with Python's precedence and int/float rules.
pub fn eval(text: &str) -> Result<Num> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
        text,
    };
    let v = p.expr()?;
    p.ws();
    if p.i < p.s.len() {
        return p.fail("an operator or the end");
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    text: &'a str,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, tok: &str) -> bool {
        self.ws();
        if self.s[self.i..].starts_with(tok.as_bytes()) {
            // `*` must not take the first half of `**`, nor `/` of `//`.
            let next = self.s.get(self.i + tok.len()).copied();
            if (tok == "*" && next == Some(b'*')) || (tok == "/" && next == Some(b'/')) {
                return false;
            }
            self.i += tok.len();
            true
        } else {
            false
        }
    }

    fn fail<T>(&self, expected: &str) -> Result<T> {
        let at = self.i.min(self.text.len());
        bail!(
            "eval: expected {expected} at position {at} of '{}' (here: '{}')",
            self.text,
            &self.text[at..]
        )
    }

    fn expr(&mut self) -> Result<Num> {
        let mut v = self.term()?;
        loop {
            if self.eat("+") {
                v = arith(v, self.term()?, |a, b| a.checked_add(b), |a, b| a + b);
            } else if self.eat("-") {
                v = arith(v, self.term()?, |a, b| a.checked_sub(b), |a, b| a - b);
            } else {
                return Ok(v);
            }
        }
    }

    fn term(&mut self) -> Result<Num> {
        let mut v = self.unary()?;
        loop {
            if self.eat("*") {
                v = arith(v, self.unary()?, |a, b| a.checked_mul(b), |a, b| a * b);
            } else if self.eat("//") {
                let r = self.unary()?;
                v = match (v, r) {
                    (_, Num::Int(0)) => bail!("eval: integer division by zero in '{}'", self.text),
                    (Num::Int(a), Num::Int(b)) => {
                        Num::Int(a.div_euclid(b) - i64::from(b < 0 && a.rem_euclid(b) != 0))
                    }
                    (a, b) => Num::Float((a.f() / b.f()).floor()),
                };
            } else if self.eat("/") {
                let r = self.unary()?;
                if r.f() == 0.0 {
                    bail!("eval: division by zero in '{}'", self.text);
                }
                v = Num::Float(v.f() / r.f());
            } else if self.eat("%") {
                let r = self.unary()?;
                v = match (v, r) {
                    (_, Num::Int(0)) => bail!("eval: modulo by zero in '{}'", self.text),
                    // Python's remainder takes the divisor's sign.
                    (Num::Int(a), Num::Int(b)) => Num::Int(((a % b) + b) % b),
                    (a, b) => Num::Float(a.f() - b.f() * (a.f() / b.f()).floor()),
                };
            } else {
                return Ok(v);
            }
        }
    }

    fn unary(&mut self) -> Result<Num> {
        if self.eat("-") {
            return Ok(match self.unary()? {
                Num::Int(i) => Num::Int(-i),
                Num::Float(x) => Num::Float(-x),
            });
        }
        if self.eat("+") {
            return self.unary();
        }
        self.power()
    }

    /// `a ** b`: right-associative, and binding tighter than a unary minus on its left.
    fn power(&mut self) -> Result<Num> {
        let base = self.atom()?;
        if self.eat("**") {
            let e = self.unary()?;
            return Ok(match (base, e) {
                (Num::Int(a), Num::Int(b)) if b >= 0 => {
                    match u32::try_from(b).ok().and_then(|b| a.checked_pow(b)) {
                        Some(v) => Num::Int(v),
                        None => Num::Float((a as f64).powf(b as f64)),
                    }
                }
                (a, b) => Num::Float(a.f().powf(b.f())),
            });
        }
        Ok(base)
    }

    fn atom(&mut self) -> Result<Num> {
        self.ws();
        if self.eat("(") {
            let v = self.expr()?;
            if !self.eat(")") {
                return self.fail("')'");
            }
            return Ok(v);
        }
        let start = self.i;
        let c = self.s.get(self.i).copied().unwrap_or(0);
        if c.is_ascii_digit() || c == b'.' {
            while self.i < self.s.len()
                && (self.s[self.i].is_ascii_alphanumeric()
                    || self.s[self.i] == b'.'
                    || self.s[self.i] == b'_'
                    || ((self.s[self.i] == b'-' || self.s[self.i] == b'+')
                        && matches!(self.s[self.i - 1], b'e' | b'E')))
            {
                self.i += 1;
            }
            let t = self.text[start..self.i].replace('_', "");
            if let Ok(i) = t.parse::<i64>() {
                return Ok(Num::Int(i));
            }
            return match t.parse::<f64>() {
                Ok(x) => Ok(Num::Float(x)),
                Err(_) => {
                    self.i = start;
                    self.fail("a number")
                }
            };
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            while self.i < self.s.len()
                && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_')
            {
                self.i += 1;
            }
            let name = &self.text[start..self.i];
            match name {
                "True" => return Ok(Num::Int(1)),
                "False" => return Ok(Num::Int(0)),
                _ => {}
            }
            if !self.eat("(") {
                self.i = start;
                return self.fail("a number, '(' or a function (min, max, abs, round, int, float)");
            }
            let mut args = vec![];
            if !self.eat(")") {
                loop {
                    args.push(self.expr()?);
                    if self.eat(")") {
                        break;
                    }
                    if !self.eat(",") {
                        return self.fail("',' or ')'");
                    }
                }
            }
            return call(name, &args, self.text);
        }
        self.fail("a number, '(' or a function")
    }
}

fn arith(
    a: Num,
    b: Num,
    int: impl Fn(i64, i64) -> Option<i64>,
    float: impl Fn(f64, f64) -> f64,
) -> Num {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => {
            int(x, y).map_or(Num::Float(float(x as f64, y as f64)), Num::Int)
        }
        _ => Num::Float(float(a.f(), b.f())),
    }
}

fn call(name: &str, args: &[Num], text: &str) -> Result<Num> {
    let one = || -> Result<Num> {
        match args {
            [a] => Ok(*a),
            _ => bail!(
                "eval: {name}() takes one argument, got {} in '{text}'",
                args.len()
            ),
        }
    };
    Ok(match name {
        "min" | "max" => {
            if args.is_empty() {
                bail!("eval: {name}() needs at least one argument in '{text}'");
            }
            let mut best = args[0];
            for &a in &args[1..] {
                let better = if name == "min" { a.f() < best.f() } else { a.f() > best.f() };
                if better {
                    best = a;
                }
            }
            best
        }
        "abs" => match one()? {
            Num::Int(i) => Num::Int(i.abs()),
            Num::Float(x) => Num::Float(x.abs()),
        },
        // Python rounds halves to even.
        "round" => Num::Int(one()?.f().round_ties_even() as i64),
        "int" => Num::Int(one()?.f().trunc() as i64),
        "float" => Num::Float(one()?.f()),
        other => bail!(
            "eval: unknown function '{other}' in '{text}'; available: min, max, abs, round, int, float"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::{eval, Num};

    #[test]
    fn python_arithmetic() {
        let f = |s: &str| eval(s).unwrap();
        assert_eq!(f("2 * 3 + 1"), Num::Int(7));
        assert_eq!(f("200 / (2 * max(1, 0.01**2))"), Num::Float(100.0));
        assert_eq!(f("200 / max(1, 30**2)"), Num::Float(200.0 / 900.0));
        assert_eq!(f("-2**2"), Num::Int(-4));
        assert_eq!(f("2**3**2"), Num::Int(512));
        assert_eq!(f("7 // 2"), Num::Int(3));
        assert_eq!(f("-7 // 2"), Num::Int(-4));
        assert_eq!(f("-7 % 3"), Num::Int(2));
        assert_eq!(f("1e-3 * 2"), Num::Float(2e-3));
        assert_eq!(f("round(2.5) + int(3.9) + abs(-1)"), Num::Int(6));
        assert_eq!(f("min(3, 1.5, 2)"), Num::Float(1.5));
        assert_eq!(f("2 ** -1"), Num::Float(0.5));
        for bad in ["1 +", "(1", "foo(1)", "1 / 0", "x", "1 2"] {
            assert!(eval(bad).is_err(), "{bad}");
        }
    }
}
