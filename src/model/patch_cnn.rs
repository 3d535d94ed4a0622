//! The two-layer CNN of benign-overfitting papers: `m` filters per class shared across
//! patches, `F_j(x) = (1/m) sum_r sum_p sigma(<w_{j,r}, x_p>)`, second layer fixed.

use super::{normal_param, Activation, Net};
use burn::module::{Module, Param};
use burn::prelude::*;

#[derive(Module, Debug)]
pub struct PatchCnn {
    /// `[classes, m, d]`; for binary data class 0 is the -1 class and class 1 the +1 class.
    pub filters: Param<Tensor<3>>,
    /// Fixed second layer `[classes * m, outputs]`: `+-1/m` per filter (a constant, not trained).
    pub head: Tensor<2>,
    #[module(skip)]
    pub act: Activation,
    #[module(skip)]
    pub patches: usize,
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
        // Output j sums its own m filters / m; binary data reads f = F_{+1} - F_{-1}.
        let outputs = if binary { 1 } else { classes };
        let mut head = vec![0.0f32; classes * m * outputs];
        for j in 0..classes {
            for r in 0..m {
                let row = (j * m + r) * outputs;
                if binary {
                    head[row] = if j == 1 { 1.0 } else { -1.0 } / m as f32;
                } else {
                    head[row + j] = 1.0 / m as f32;
                }
            }
        }
        PatchCnn {
            filters: normal_param([classes, m, dim], init_scale, device),
            head: Tensor::from_data(TensorData::new(head, [classes * m, outputs]), device),
            act,
            patches,
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
        // Sum over patches, then the fixed second layer: fewer ops than slicing per class.
        let pooled: Tensor<2> = h.reshape([b, p, j * m]).sum_dim(1).reshape([b, j * m]);
        pooled.matmul(self.head.clone())
    }

    /// `filters`: each filter's activation summed over the patches, `sum_p sigma(<w_{j,r},
    /// x_p>)`, `[batch, classes * m]` (what the fixed second layer weighs).
    fn hidden(&self, x: Tensor<2>) -> Vec<(String, Tensor<2>)> {
        let [b, _] = x.dims();
        let [j, m, d] = self.filters.dims();
        let p = self.patches;
        let w = self.filters.val().reshape([j * m, d]);
        let h = self.act.apply(x.reshape([b * p, d]).matmul(w.transpose()));
        let pooled = h.reshape([b, p, j * m]).sum_dim(1).reshape([b, j * m]);
        vec![("filters".into(), pooled)]
    }
}
