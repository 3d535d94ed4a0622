//! FGSM and PGD (l2 or l_inf) against the current network: gradients w.r.t. the input
//! only (`no_grad` model copy), per-sample normalisation and projection onto the ball.

use super::member_optim::per_member;
use super::{loss, AdvSpec, Attack, LossKind, Norm};
use crate::data::Task;
use crate::model::stacked::Stacked;
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

/// Why these members' attacks cannot run as one, or None: they must agree on the attack,
/// its norm and its steps; radius and step size may differ.
pub fn unstackable(specs: &[Option<&AdvSpec>]) -> Option<String> {
    let key = |a: &Option<&AdvSpec>| a.map(|a| (a.attack, a.norm, a.steps, a.train));
    let first = key(specs.first()?);
    specs
        .iter()
        .any(|a| key(a) != first)
        .then(|| "the jobs differ in adv (attack, norm, steps or train)".into())
}

/// `perturb` for every member of a stacked model at once, each with its own radius and step
/// size: `x` is `[K, batch, features]`, `y` `[K * batch]`. The members are independent, so
/// the gradient of the sum of their mean losses is each member's own; every operation is the
/// single attack's, in its precision.
pub fn perturb_stacked<S: Stacked>(
    model: &S,
    x: Tensor<3>,
    y: Tensor<1, Int>,
    specs: &[&AdvSpec],
    kind: LossKind,
    task: Task,
) -> Tensor<3> {
    let frozen = model.clone().no_grad();
    let base = x.without_autodiff();
    let [k, b, f] = base.dims();
    let mut delta = base.zeros_like();
    let first = specs[0];
    let steps = match first.attack {
        Attack::Fgsm => 1,
        Attack::Pgd => first.steps.max(1),
    };
    // The single attack scales by `alpha as f32` and clamps to `eps as f32`.
    let f32s = |v: &dyn Fn(&AdvSpec) -> f64| -> Vec<f64> {
        specs.iter().map(|a| v(a) as f32 as f64).collect()
    };
    let alpha = per_member(
        &f32s(&|a| match a.attack {
            Attack::Fgsm => a.eps,
            Attack::Pgd => a.step_size,
        }),
        &base,
    );
    let eps = per_member(&f32s(&|a| a.eps), &base);
    let rows = |t: Tensor<3>| -> Tensor<3> { t.powf_scalar(2.0).sum_dim(2).sqrt() };
    for _ in 0..steps {
        let d = delta.clone().autodiff().require_grad();
        let out = frozen.forward(base.clone().autodiff() + d.clone());
        let o = out.dims()[2];
        let each = loss::per_sample(
            kind,
            task,
            out.reshape([k * b, o]),
            y.clone(),
            base.clone().autodiff().reshape([k * b, f]),
        );
        let l = each.reshape([k, b]).mean_dim(1).sum();
        let grads = l.backward();
        let Some(g) = d.grad(&grads) else { break };
        delta = match first.norm {
            Norm::Linf => {
                let bound = eps.clone().expand([k, b, f]);
                (delta + g.sign() * alpha.clone())
                    .max_pair(bound.clone().neg())
                    .min_pair(bound)
            }
            Norm::L2 => {
                let step = g.clone() / (rows(g) + 1e-12);
                let next = delta + step * alpha.clone();
                let scale = ((rows(next.clone()) + 1e-12).recip() * eps.clone()).clamp_max(1.0);
                next * scale
            }
        };
    }
    (base + delta).autodiff()
}
