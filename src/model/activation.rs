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
            Activation::ReluPow(q) => activation::relu(x).powf_scalar(q),
            Activation::SmoothRelu { q, rho } => {
                let a = activation::relu(x);
                let low = a.clone().clamp_max(rho);
                low.clone().powf_scalar(q) / (q * rho.powf(q - 1.0)) + (a - low)
            }
        }
    }
}
