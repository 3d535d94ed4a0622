//! The mean-field two-layer network of lazy-vs-rich studies (Chizat & Bach 2019):
//! `f(x) = (1/m) Σ_r a_r σ(w_r·x/√d)`, every weight drawn at one `scale`.

use super::{drawn, Activation, Net};
use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::Distribution;

#[derive(Module, Debug)]
pub struct MeanField {
    /// First layer `[m, d]`, one neuron a row.
    pub w: Param<Tensor<2>>,
    /// Output weights `[outputs, m]`.
    pub a: Param<Tensor<2>>,
    #[module(skip)]
    pub act: Activation,
}

impl MeanField {
    /// `w_r ~ N(0, scale² I)`, `a_r ~ N(0, scale²)`. With `symmetric`, neurons `m/2..` copy
    /// the first half's `w` and negate its `a` (the doubling trick), so `f ≡ 0` at init for
    /// every scale and the scale changes the dynamics alone, not the starting function.
    pub fn new(
        input: usize,
        width: usize,
        outputs: usize,
        scale: f64,
        symmetric: bool,
        act: Activation,
        device: &Device,
    ) -> MeanField {
        let dist = Distribution::Normal(0.0, scale);
        let (w, a) = if symmetric {
            let half = width / 2;
            let w = drawn([half, input], dist, device);
            let a = drawn([outputs, half], dist, device);
            (
                Tensor::cat(vec![w.clone(), w], 0),
                Tensor::cat(vec![a.clone(), a.neg()], 1),
            )
        } else {
            (
                drawn([width, input], dist, device),
                drawn([outputs, width], dist, device),
            )
        };
        MeanField {
            w: Param::from_tensor(w),
            a: Param::from_tensor(a),
            act,
        }
    }
}

impl Net for MeanField {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [_, d] = x.dims();
        let [_, m] = self.a.dims();
        let h = self.hidden_units(x, d);
        h.matmul(self.a.val().transpose()) / m as f64
    }

    /// `w`: the hidden units `σ(w_r·x/√d)`.
    fn hidden(&self, x: Tensor<2>) -> Vec<(String, Tensor<2>)> {
        let [_, d] = x.dims();
        vec![("w".into(), self.hidden_units(x, d))]
    }
}

impl MeanField {
    fn hidden_units(&self, x: Tensor<2>, d: usize) -> Tensor<2> {
        self.act
            .apply(x.matmul(self.w.val().transpose()) / (d as f64).sqrt())
    }
}
