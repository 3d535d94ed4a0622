//! Each member's optimizer in a batched sweep: burn's SGD (momentum, Nesterov), Adam and AdamW
//! steps applied op for op to the stacked parameters, with a learning rate and weight decay per
//! member; each member's state is saved as the burn record its single run would have written.

use super::{OptimKind, OptimSpec};
use crate::model::stacked::Stacked;
use anyhow::{bail, Context, Result};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::momentum::MomentumState;
use burn::optim::{
    AdamState, AdamWState, AdaptiveMomentumState, GradientsParams, RecordState, SgdState, StateSink,
};
use burn::prelude::*;
use std::collections::HashMap;
use std::path::Path;

/// The update rule, shared by all members; its numbers (`Hyper`) may differ per member.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Rule {
    Sgd { nesterov: bool },
    Adam,
    AdamW,
}

/// One member's hyperparameters, in burn's types so each operation rounds as burn's does
/// (burn keeps SGD's momentum and Adam's betas and eps as f32).
#[derive(Clone, Copy, Debug)]
struct Hyper {
    momentum: f32,
    dampening: f64,
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
}

impl Rule {
    fn of(kind: &OptimKind) -> (Rule, Hyper) {
        match *kind {
            OptimKind::Sgd {
                momentum,
                dampening,
                nesterov,
            } => (
                Rule::Sgd { nesterov },
                Hyper {
                    momentum: momentum as f32,
                    // Without momentum burn's SGD has no dampening either.
                    dampening: if momentum > 0.0 { dampening } else { 0.0 },
                    beta_1: 0.0,
                    beta_2: 0.0,
                    epsilon: 0.0,
                },
            ),
            OptimKind::Adam { betas, eps } | OptimKind::AdamW { betas, eps } => (
                if matches!(kind, OptimKind::Adam { .. }) {
                    Rule::Adam
                } else {
                    Rule::AdamW
                },
                Hyper {
                    momentum: 0.0,
                    dampening: 0.0,
                    beta_1: betas.0 as f32,
                    beta_2: betas.1 as f32,
                    epsilon: eps as f32,
                },
            ),
        }
    }
}

/// One parameter's state for all members, flattened: SGD's velocity, or Adam's two moments.
struct Slot {
    time: usize,
    first: Tensor<1>,
    second: Option<Tensor<1>>,
}

/// The members' optimizer state, keyed by the stacked parameters' ids.
pub struct MemberOptim {
    rule: Rule,
    hyper: Vec<Hyper>,
    /// Each member's weight decay, rounded to f32 as burn stores it.
    wd: Vec<f64>,
    slots: HashMap<ParamId, Slot>,
}

/// Why these members' optimizers cannot step as one, or None when they can: they must be
/// of one kind (and agree on Nesterov); momentum, dampening, betas and eps may differ.
pub fn unsupported(specs: &[&OptimSpec]) -> Option<String> {
    let first = Rule::of(&specs.first()?.kind).0;
    specs
        .iter()
        .any(|s| Rule::of(&s.kind).0 != first)
        .then(|| "the jobs differ in optimizer kind or nesterov".into())
}

impl MemberOptim {
    /// The optimizer of members with these settings (`unsupported` says None for them).
    pub fn new(specs: &[&OptimSpec]) -> MemberOptim {
        MemberOptim {
            rule: Rule::of(&specs[0].kind).0,
            hyper: specs.iter().map(|s| Rule::of(&s.kind).1).collect(),
            wd: specs.iter().map(|s| s.weight_decay as f32 as f64).collect(),
            slots: HashMap::new(),
        }
    }

    /// Whether any member keeps SGD's velocity.
    fn momentum(&self) -> bool {
        self.hyper.iter().any(|h| h.momentum > 0.0)
    }

    /// One number per member, as f64 for `per_member`.
    fn each(&self, f: impl Fn(&Hyper) -> f64) -> Vec<f64> {
        self.hyper.iter().map(f).collect()
    }

    /// One step of every member, member k at learning rate `lr[k]`.
    pub fn step<S: Stacked>(&mut self, model: S, grads: &mut GradientsParams, lr: &[f64]) -> S {
        model.map(&mut Step {
            optim: self,
            grads,
            lr,
        })
    }

    /// Member `k`'s state as burn's optimizer record, keyed by the parameter ids of `one` (the
    /// member's copy whose weights go into the same checkpoint), so that the member's run
    /// resumes alone exactly as if it had trained alone.
    pub fn save_member<S: Stacked>(
        &self,
        model: &S,
        one: &S::One,
        k: usize,
        path: &Path,
    ) -> Result<()> {
        let ids = trainable_ids(one);
        let mut writer = Record::default();
        if !self.slots.is_empty() {
            let state = |second: bool| {
                let mut fill = Fill {
                    slots: &self.slots,
                    second,
                    missing: 0,
                };
                let member = model.clone().map(&mut fill).member(k);
                (member, fill.missing)
            };
            let (firsts, missing) = state(false);
            let mut seconds = Collect::default();
            if matches!(self.rule, Rule::Adam | Rule::AdamW) {
                state(true).0.visit(&mut seconds);
            }
            let time = self.slots.values().map(|s| s.time).max().unwrap_or(0);
            let mut flatten = Flatten {
                rule: self.rule,
                velocity: self.hyper[k].momentum > 0.0,
                time,
                ids: &ids,
                seconds: seconds.0,
                at: 0,
                sink: StateSink::default(),
                ranks: vec![],
            };
            firsts.visit(&mut flatten);
            if missing > 0 || flatten.at != ids.len() {
                bail!(
                    "member {k}'s optimizer state does not match its parameters ({} of {} \
                     trainable parameters have state)",
                    flatten.at,
                    ids.len()
                );
            }
            writer = Record {
                sink: flatten.sink,
                ranks: flatten.ranks,
            };
        }
        writer.save(path)
    }
}

/// A member's flattened state, and each parameter's rank, as `ModuleOptimizer::to_record` lays
/// them out: tensors `{param_id}.{field}` carrying the id, scalars, and `{param_id}.__rank`.
#[derive(Default)]
struct Record {
    sink: StateSink,
    ranks: Vec<(u64, usize)>,
}

impl Record {
    fn save(self, path: &Path) -> Result<()> {
        let tensors = self
            .sink
            .tensors
            .into_iter()
            .map(|(name, data)| {
                let id = name.split('.').next().and_then(|s| s.parse::<u64>().ok());
                let (bytes, shape, dtype) = data.into_parts();
                burn_pack::Tensor::new(name, dtype, shape, id, bytes)
            })
            .collect();
        let mut writer = burn_pack::Writer::new(tensors);
        for (name, value) in &self.sink.scalars {
            writer = writer.with_scalar(name, *value);
        }
        for (id, rank) in self.ranks {
            writer = writer.with_scalar(&format!("{id}.__rank"), burn_pack::Scalar::from(rank));
        }
        writer
            .write_to_file(path)
            .map_err(|e| anyhow::anyhow!("{e:?}"))
            .with_context(|| format!("saving optimizer state {}", path.display()))
    }
}

/// `values` as `[K, 1, ..., 1]` in `like`'s dtype, to scale each member's slice.
pub fn per_member<const D: usize>(values: &[f64], like: &Tensor<D>) -> Tensor<D> {
    let mut shape = [1; D];
    shape[0] = values.len();
    Tensor::<1>::from_data(
        TensorData::new(values.to_vec(), [values.len()]),
        &like.device(),
    )
    .cast(like.dtype())
    .reshape(shape)
}

struct Step<'a> {
    optim: &'a mut MemberOptim,
    grads: &'a mut GradientsParams,
    lr: &'a [f64],
}

impl Step<'_> {
    /// burn's optimizers, each operation in burn's order and precision.
    fn update<const D: usize>(&mut self, id: ParamId, p: Tensor<D>, grad: Tensor<D>) -> Tensor<D> {
        let dims = p.dims();
        let flat = |t: Tensor<D>| -> Tensor<1> { t.reshape([dims.iter().product::<usize>()]) };
        let lr = per_member(self.lr, &p);
        let slot = self.optim.slots.remove(&id);
        let decays = self.optim.wd.iter().any(|w| *w != 0.0);
        let o = &*self.optim;
        // SGD's and Adam's L2 penalty joins the gradient (AdamW decays the weights instead).
        let grad = if decays && o.rule != Rule::AdamW {
            p.clone() * per_member(&o.wd, &p) + grad
        } else {
            grad
        };
        let (next, slot) = match o.rule {
            Rule::Sgd { nesterov } => {
                let mut grad = grad;
                let mut slot = slot;
                if o.momentum() {
                    // A member without momentum: velocity = g 1 + v 0 = g, plain SGD exactly.
                    let momentum = per_member(&o.each(|h| h.momentum as f64), &p);
                    let velocity = match slot.take() {
                        Some(s) => grad
                            .clone()
                            .mul(per_member(&o.each(|h| 1.0 - h.dampening), &p))
                            .add(s.first.reshape(dims).mul(momentum.clone())),
                        None => grad.clone(),
                    };
                    grad = if nesterov {
                        velocity.clone().mul(momentum).add(grad)
                    } else {
                        velocity.clone()
                    };
                    slot = Some(Slot {
                        time: 0,
                        first: flat(velocity),
                        second: None,
                    });
                }
                let slot = slot.unwrap_or_else(|| Slot {
                    time: 0,
                    first: Tensor::<1>::empty([0], &p.device()),
                    second: None,
                });
                (p - grad * lr, slot)
            }
            Rule::Adam => {
                let (m1, m2, time) = moments(grad, slot, dims, &o.hyper);
                let t = time as i32;
                // burn's f32 scalars, per member.
                let bc2 = |h: &Hyper| (1.0 - h.beta_2.powi(t)).sqrt();
                let combined = o.each(|h| (bc2(h) / (1.0 - h.beta_1.powi(t))) as f64);
                let eps = o.each(|h| (h.epsilon * bc2(h)) as f64);
                let update = m1
                    .clone()
                    .mul(per_member(&combined, &p))
                    .div(m2.clone().sqrt().add(per_member(&eps, &p)));
                let slot = Slot {
                    time,
                    first: flat(m1),
                    second: Some(flat(m2)),
                };
                (p - update * lr, slot)
            }
            Rule::AdamW => {
                let (m1, m2, time) = moments(grad, slot, dims, &o.hyper);
                let t = time as i32;
                let c1 = o.each(|h| (1f32 - h.beta_1.powi(t)) as f64);
                let c2 = o.each(|h| (1f32 - h.beta_2.powi(t)) as f64);
                let m1_corrected = m1.clone().div(per_member(&c1, &p));
                let m2_corrected = m2.clone().div(per_member(&c2, &p));
                let update = m1_corrected.div(
                    m2_corrected
                        .sqrt()
                        .add(per_member(&o.each(|h| h.epsilon as f64), &p)),
                );
                let decayed = if decays {
                    let keep: Vec<f64> = self
                        .lr
                        .iter()
                        .zip(&o.wd)
                        .map(|(lr, wd)| 1.0 - lr * wd)
                        .collect();
                    p.clone() * per_member(&keep, &p)
                } else {
                    p
                };
                let slot = Slot {
                    time,
                    first: flat(m1),
                    second: Some(flat(m2)),
                };
                (decayed - update * lr, slot)
            }
        };
        self.optim.slots.insert(id, slot);
        next
    }
}

/// Adam's and AdamW's moment update (the two agree on it), each member with its own betas,
/// and the step count after it.
fn moments<const D: usize>(
    grad: Tensor<D>,
    slot: Option<Slot>,
    dims: [usize; D],
    hyper: &[Hyper],
) -> (Tensor<D>, Tensor<D>, usize) {
    let f = |v: &dyn Fn(&Hyper) -> f32| -> Tensor<D> {
        per_member(
            &hyper.iter().map(|h| v(h) as f64).collect::<Vec<_>>(),
            &grad,
        )
    };
    let (beta_1, beta_2) = (f(&|h| h.beta_1), f(&|h| h.beta_2));
    let factor_1 = f(&|h| 1.0 - h.beta_1);
    let factor_2 = f(&|h| 1.0 - h.beta_2);
    match slot {
        Some(Slot {
            time,
            first,
            second: Some(second),
        }) => (
            first
                .reshape(dims)
                .mul(beta_1)
                .add(grad.clone().mul(factor_1)),
            second
                .reshape(dims)
                .mul(beta_2)
                .add(grad.square().mul(factor_2)),
            time + 1,
        ),
        _ => (grad.clone().mul(factor_1), grad.square().mul(factor_2), 1),
    }
}

impl ModuleMapper for Step<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let train = tensor.is_require_grad();
        let next = self.update(id, tensor.inner(), grad);
        let mut next = Tensor::from_inner(next);
        if train {
            next = next.require_grad();
        }
        Param::from_mapped_value(id, next, mapper)
    }
}

/// The stacked model with each stepped parameter's value replaced by its state (the first or
/// second tensor), so that `Stacked::member` slices the state exactly as it slices weights.
struct Fill<'a> {
    slots: &'a HashMap<ParamId, Slot>,
    second: bool,
    missing: usize,
}

impl ModuleMapper for Fill<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let train = tensor.is_require_grad();
        let state = self.slots.get(&id).and_then(|s| {
            if self.second {
                s.second.clone()
            } else {
                Some(s.first.clone())
            }
        });
        let value = match state {
            Some(s) if s.dims()[0] > 0 => Tensor::from_inner(s.reshape(tensor.dims())),
            Some(_) => tensor.detach(),
            None => {
                self.missing += usize::from(train);
                tensor.detach()
            }
        };
        let value = if train { value.require_grad() } else { value };
        Param::from_mapped_value(id, value, mapper)
    }
}

/// The trainable parameters' ids of `module`, in visiting order: the order in which a
/// member copy and a stacked-and-sliced twin of it meet the same parameters.
pub(super) fn trainable_ids<M: Module>(module: &M) -> Vec<ParamId> {
    #[derive(Default)]
    struct Ids(Vec<ParamId>);
    impl ModuleVisitor for Ids {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if param.is_require_grad() {
                self.0.push(param.id);
            }
        }
    }
    let mut ids = Ids::default();
    module.visit(&mut ids);
    ids.0
}

/// The trainable parameters' values, in visiting order.
#[derive(Default)]
struct Collect(Vec<TensorData>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if param.is_require_grad() {
            self.0.push(param.val().into_data());
        }
    }
}

/// Builds each parameter's burn state struct from the member's slices and flattens it with
/// burn's own `RecordState`, so the field names are burn's.
struct Flatten<'a> {
    rule: Rule,
    /// This member keeps SGD's velocity (momentum > 0).
    velocity: bool,
    time: usize,
    ids: &'a [ParamId],
    seconds: Vec<TensorData>,
    at: usize,
    sink: StateSink,
    ranks: Vec<(u64, usize)>,
}

impl ModuleVisitor for Flatten<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if !param.is_require_grad() {
            return;
        }
        let Some(id) = self.ids.get(self.at) else {
            self.at += 1;
            return;
        };
        let prefix = id.val().to_string();
        let first = param.val().inner();
        let second = || {
            Tensor::<D>::from_data(self.seconds[self.at].clone(), &first.device())
                .cast(first.dtype())
        };
        match self.rule {
            Rule::Sgd { .. } if !self.velocity => {
                SgdState::<D>::new(None).state_flatten(&prefix, &mut self.sink)
            }
            Rule::Sgd { .. } => SgdState::new(Some(MomentumState::new(first)))
                .state_flatten(&prefix, &mut self.sink),
            Rule::Adam => AdamState::new(AdaptiveMomentumState::new(
                self.time,
                first.clone(),
                second(),
            ))
            .state_flatten(&prefix, &mut self.sink),
            Rule::AdamW => AdamWState {
                momentum: AdaptiveMomentumState::new(self.time, first.clone(), second()),
            }
            .state_flatten(&prefix, &mut self.sink),
        }
        self.ranks.push((id.val(), D));
        self.at += 1;
    }
}
