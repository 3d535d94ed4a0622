//! Activation functions of feature-learning papers, parsed from config strings such as
//! `relu`, `relu^3` (polynomial ReLU), `smooth_relu` (Allen-Zhu & Li's ReLU~), `quad`.

use burn::tensor::activation;
use burn::tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Relu,
    Gelu,
    Tanh,
    Sigmoid,
    Identity,
    /// `z^2` (the quadratic activation of modular-addition theory).
    Quad,
    /// `max(0, z)^q`.
    ReluPow(f32),
    /// Smoothed ReLU: 0 below 0, `z^q / (q rho^(q-1))` up to `rho`, then `z - (1 - 1/q) rho`.
    SmoothRelu {
        q: f32,
        rho: f32,
    },
}

pub const NAMES: &[&str] = &[
    "relu",
    "gelu",
    "tanh",
    "sigmoid",
    "identity",
    "quad",
    "relu^q",
    "relu^<number>",
    "smooth_relu",
];

impl Activation {
    /// `q` fills in `relu^q` and `smooth_relu`; `rho` is the smoothed ReLU's knee.
    pub fn parse(name: &str, q: f64, rho: f64) -> Result<Activation, String> {
        let q = q as f32;
        Ok(match name.trim() {
            "relu" => Activation::Relu,
            "gelu" => Activation::Gelu,
            "tanh" => Activation::Tanh,
            "sigmoid" => Activation::Sigmoid,
            "identity" | "linear" | "none" => Activation::Identity,
            "quad" | "square" => Activation::Quad,
            "relu^q" => Activation::ReluPow(q),
            "smooth_relu" | "smoothed_relu" => Activation::SmoothRelu { q, rho: rho as f32 },
            other => match other.strip_prefix("relu^").map(|p| p.parse::<f32>()) {
                Some(Ok(p)) if p >= 1.0 => Activation::ReluPow(p),
                _ => {
                    return Err(format!(
                        "unknown activation '{other}'; expected one of: {}",
                        NAMES.join(", ")
                    ))
                }
            },
        })
    }

    pub fn apply<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match *self {
            Activation::Relu => activation::relu(x),
            Activation::Gelu => activation::gelu(x),
            Activation::Tanh => activation::tanh(x),
            Activation::Sigmoid => activation::sigmoid(x),
            Activation::Identity => x,
            Activation::Quad => x.clone() * x,
            Activation::ReluPow(1.0) => activation::relu(x),
            // Whole powers as products, as PyTorch computes `relu(x) ** 3` (and 9% faster
            // here than `powf`, which burn-flex calls per element from 3 up).
            Activation::ReluPow(q) if q.fract() == 0.0 && (2.0..=4.0).contains(&q) => {
                let a = activation::relu(x);
                let mut y = a.clone();
                for _ in 1..q as usize {
                    y = y * a.clone();
                }
                y
            }
            Activation::ReluPow(q) => activation::relu(x).powf_scalar(q),
            Activation::SmoothRelu { q, rho } => {
                let a = activation::relu(x);
                let low = a.clone().clamp_max(rho);
                low.clone().powf_scalar(q) / (q * rho.powf(q - 1.0)) + (a - low)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::prelude::*;
    use burn::tensor::Distribution;

    /// `relu^q` for whole `q` (products) and other `q` (`powf`): value `max(0, z)^q` and
    /// gradient `q max(0, z)^(q-1)`, against the same computed on the host in f64.
    #[test]
    fn relu_powers_have_the_right_values_and_gradients() {
        for q in [2.0f32, 3.0, 4.0, 2.5] {
            let ad = Device::flex().autodiff();
            let x = Tensor::<1>::random([200], Distribution::Normal(0.0, 2.0), &ad).require_grad();
            let y = Activation::ReluPow(q).apply(x.clone());
            let grads = y.clone().sum().backward();
            let read = |t: Tensor<1>| t.into_data().convert::<f64>().try_to_vec::<f64>().unwrap();
            let (xs, ys) = (read(x.clone().detach()), read(y.detach()));
            let gs = read(x.grad(&grads).unwrap());
            let q = q as f64;
            for ((x, y), g) in xs.iter().zip(&ys).zip(&gs) {
                let r = x.max(0.0);
                let (want_y, want_g) = (r.powf(q), q * r.powf(q - 1.0));
                assert!(
                    (y - want_y).abs() <= 1e-5 * want_y.abs().max(1.0),
                    "q={q} x={x}: {y}"
                );
                assert!(
                    (g - want_g).abs() <= 1e-5 * want_g.abs().max(1.0),
                    "q={q} x={x}: {g}"
                );
            }
        }
    }
}
