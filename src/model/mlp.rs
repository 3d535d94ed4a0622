//! Fully connected network with theory-paper options: `N(0, sigma0^2)` init, polynomial
//! ReLU, bias off, and a fixed (untrained) second layer. Weights are `[out, in]` as in PyTorch.

use super::{normal_param, on_flex, transposed, uniform_param, Activation, Net};
use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::Distribution;

#[derive(Module, Debug)]
pub struct Dense {
    pub weight: Param<Tensor<2>>,
    pub bias: Option<Param<Tensor<1>>>,
}

impl Dense {
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        // Which matmul form is faster depends on the batch. Flex (MLP 784-W-10, ms a step):
        // below 256 rows `(W xᵀ)ᵀ`, whose weight gradient comes out of the matmul contiguous
        // (2048 x 64: 4.2 against 5.2); from 256 rows `x Wᵀ` with the gradient made
        // contiguous (2048 x 256: 7.9 against 10.1). LibTorch: `(W xᵀ)ᵀ` below 512 rows,
        // `x Wᵀ` with the plain transpose above.
        let flex = on_flex(&x);
        let y = if x.dims()[0] < if flex { 256 } else { 512 } {
            self.weight.val().matmul(x.transpose()).transpose()
        } else if flex {
            x.matmul(transposed(self.weight.val()))
        } else {
            x.matmul(self.weight.val().transpose())
        };
        match &self.bias {
            Some(b) => y + b.val().unsqueeze::<2>(),
            None => y,
        }
    }
}

#[derive(Module, Debug)]
pub struct Mlp {
    pub layers: Vec<Dense>,
    #[module(skip)]
    pub act: Activation,
}

impl Mlp {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        input: usize,
        widths: &[usize],
        output: usize,
        act: Activation,
        bias: bool,
        init_scale: Option<f64>,
        fixed_last_layer: bool,
        device: &Device,
    ) -> Mlp {
        let mut dims = vec![input];
        dims.extend_from_slice(widths);
        dims.push(output);
        let n = dims.len() - 1;
        let layers = (0..n)
            .map(|i| {
                let (fan_in, fan_out) = (dims[i], dims[i + 1]);
                if fixed_last_layer && i == n - 1 && n > 1 {
                    // a_r = +-1/m with random signs, no bias: the two-layer nets of theory papers.
                    let coin = Tensor::<2>::random(
                        [fan_out, fan_in],
                        Distribution::Bernoulli(0.5),
                        device,
                    );
                    let w = (coin * 2.0 - 1.0) / fan_in as f32;
                    return Dense {
                        weight: Param::from_tensor(w).set_require_grad(false),
                        bias: None,
                    };
                }
                let bound = 1.0 / (fan_in as f64).sqrt();
                let weight = match init_scale {
                    Some(s) => normal_param([fan_out, fan_in], s, device),
                    None => uniform_param([fan_out, fan_in], bound, device),
                };
                let bias = bias.then(|| match init_scale {
                    Some(_) => Param::from_tensor(Tensor::zeros([fan_out], device)),
                    None => uniform_param([fan_out], bound, device),
                });
                Dense { weight, bias }
            })
            .collect();
        Mlp { layers, act }
    }
}

impl Net for Mlp {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len() - 1;
        let mut h = x;
        for (i, l) in self.layers.iter().enumerate() {
            h = l.forward(h);
            if i < last {
                h = self.act.apply(h);
            }
        }
        h
    }

    /// `layers.i`: hidden layer `i` after its activation (the output layer is not hidden).
    fn hidden(&self, x: Tensor<2>) -> Vec<(String, Tensor<2>)> {
        let last = self.layers.len() - 1;
        let mut h = x;
        let mut out = vec![];
        for (i, l) in self.layers.iter().enumerate().take(last) {
            h = self.act.apply(l.forward(h));
            out.push((format!("layers.{i}"), h.clone()));
        }
        out
    }
}
