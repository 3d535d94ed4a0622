//! The two-layer CNN of benign-overfitting papers: `m` filters per class shared across
//! patches, `F_j(x) = (1/m) sum_r sum_p sigma(<w_{j,r}, x_p>)`, second layer fixed.

use super::{normal_param, Activation, Net};
use burn::module::{Module, Param};
use burn::prelude::*;

#[derive(Module, Debug)]
pub struct PatchCnn {
    /// `[classes, m, d]`; for binary data class 0 is the -1 class and class 1 the +1 class.
    pub filters: Param<Tensor<3>>,
    #[module(skip)]
    pub act: Activation,
    #[module(skip)]
    pub patches: usize,
    #[module(skip)]
    pub binary: bool,
}

impl PatchCnn {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        patches: usize,
        dim: usize,
        classes: usize,
        m: usize,
        act: Activation,
        init_scale: f64,
        binary: bool,
        device: &Device,
    ) -> PatchCnn {
        PatchCnn {
            filters: normal_param([classes, m, dim], init_scale, device),
            act,
            patches,
            binary,
        }
    }
}

impl Net for PatchCnn {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [b, _] = x.dims();
        let [j, m, d] = self.filters.dims();
        let p = self.patches;
        let w = self.filters.val().reshape([j * m, d]);
        let h = self.act.apply(x.reshape([b * p, d]).matmul(w.transpose()));
        // [b*p, j*m] -> [b, p*?]: sum over patches and filters of each class.
        let f = h
            .reshape([b, p, j, m])
            .sum_dims_squeeze::<2, usize>(&[1, 3])
            / m as f32;
        if self.binary {
            // f(x) = F_{+1}(x) - F_{-1}(x)
            f.clone().narrow(1, 1, 1) - f.narrow(1, 0, 1)
        } else {
            f
        }
    }
}
