//! FGSM and PGD (l2 or l_inf) against the current network: gradients w.r.t. the input
//! only (`no_grad` model copy), per-sample normalisation and projection onto the ball.

use super::{loss, AdvSpec, Attack, LossKind, Norm};
use crate::data::Task;
use crate::model::Net;
use burn::prelude::*;

/// Per-row l2 norm as a `[b, 1]` column.
fn row_norm(t: Tensor<2>) -> Tensor<2> {
    t.powf_scalar(2.0).sum_dim(1).sqrt()
}

/// The attacked batch; `x` lives on the autodiff device, and so does the result
/// (as a constant: no gradient flows back into the attack).
pub fn perturb<M: Net>(
    model: &M,
    x: Tensor<2>,
    y: Tensor<1, Int>,
    spec: &AdvSpec,
    kind: LossKind,
    task: Task,
) -> Tensor<2> {
    let frozen = model.clone().no_grad();
    let base = x.without_autodiff();
    let mut delta = base.zeros_like();
    let (steps, alpha) = match spec.attack {
        Attack::Fgsm => (1, spec.eps),
        Attack::Pgd => (spec.steps.max(1), spec.step_size),
    };
    let eps = spec.eps as f32;
    for _ in 0..steps {
        let d = delta.clone().autodiff().require_grad();
        let out = frozen.forward(base.clone().autodiff() + d.clone());
        let l = loss::loss(kind, task, out, y.clone(), base.clone().autodiff());
        let grads = l.backward();
        let Some(g) = d.grad(&grads) else { break };
        delta = match spec.norm {
            Norm::Linf => (delta + g.sign() * alpha as f32).clamp(-eps, eps),
            Norm::L2 => {
                let step = g.clone() / (row_norm(g) + 1e-12);
                let next = delta + step * alpha as f32;
                // Project each row onto the l2 ball of radius eps.
                let scale = (row_norm(next.clone()) + 1e-12)
                    .recip()
                    .mul_scalar(eps)
                    .clamp_max(1.0);
                next * scale
            }
        };
    }
    (base + delta).autodiff()
}
