//! The two-layer convolutional autoencoder of the CAE anomaly-detection paper: encoder
//! `relu(X W^T)` over patches; each kernel reconstructs the patch where it fires most.

use super::{normal_param, Net};
use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::activation::relu;

#[derive(Module, Debug)]
pub struct ConvAutoencoder {
    /// `[C, d]`: kernel `c` is row `c`.
    pub kernels: Param<Tensor<2>>,
    #[module(skip)]
    pub patches: usize,
}

impl ConvAutoencoder {
    pub fn new(patches: usize, dim: usize, c: usize, init_scale: f64, device: &Device) -> Self {
        ConvAutoencoder {
            kernels: normal_param([c, dim], init_scale, device),
            patches,
        }
    }
}

impl Net for ConvAutoencoder {
    /// `Y[p_c] += w_c` with `p_c = argmax_p relu(<w_c, x_p>)`; the argmax is not
    /// differentiated, so gradients reach `w_c` through the scatter only.
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [b, _] = x.dims();
        let [c, d] = self.kernels.dims();
        let p = self.patches;
        let w = self.kernels.val();
        let h = relu(x.reshape([b * p, d]).matmul(w.clone().transpose())).reshape([b, p, c]);
        let winner = h.argmax(1).reshape([b * c]); // [b*c], patch index per (sample, kernel)
        let onehot: Tensor<2> = winner.one_hot::<2>(p).float(); // [b*c, p]
        let mask = onehot
            .reshape([b, c, p])
            .swap_dims(1, 2)
            .reshape([b * p, c]);
        mask.matmul(w).reshape([b, p * d])
    }

    /// `kernels`: each kernel's encoder activation at the patch where it fires most,
    /// `max_p relu(<w_c, x_p>)`, `[batch, C]`.
    fn hidden(&self, x: Tensor<2>) -> Vec<(String, Tensor<2>)> {
        let [b, _] = x.dims();
        let [c, d] = self.kernels.dims();
        let p = self.patches;
        let h = relu(x.reshape([b * p, d]).matmul(self.kernels.val().transpose()));
        vec![(
            "kernels".into(),
            h.reshape([b, p, c]).max_dim(1).reshape([b, c]),
        )]
    }
}
