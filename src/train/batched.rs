//! The training loop for a batched sweep: K jobs of one shape trained as one stacked model,
//! each member with its own data, batch order, learning rate and callbacks, as if run alone.

use super::member_optim::{self, MemberOptim};
use super::trainer::{
    upload, Boundary, Callback, EpochInfo, ModelView, NetView, OnDevice, OptimState, Outcome,
    StartInfo, Status, StepInfo,
};
use super::{adversarial, loss, AdvSpec, BatchSize, OptimSpec, TrainSpec, Trainer};
use crate::data::{Dataset, Split};
use crate::model::param_names;
use crate::model::stacked::Stacked;
use anyhow::{bail, Result};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::cell::OnceCell;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// One job of the batch: its own settings, data and callbacks.
pub struct Member<'a> {
    pub spec: &'a TrainSpec,
    pub data: &'a Dataset,
    pub callbacks: Vec<Box<dyn Callback + 'a>>,
}

/// Why jobs with these settings cannot train as members of one batch, or None when they can.
/// The group's jobs must agree on everything that sets shapes or the loop's course; they may
/// differ in seeds, data values, learning rate, weight decay and schedule.
pub fn unsupported(specs: &[&TrainSpec], data: &[&Dataset]) -> Option<String> {
    let first = specs.first()?;
    let optims: Vec<&OptimSpec> = specs.iter().map(|s| &s.optim).collect();
    if let Some(why) = member_optim::unsupported(&optims) {
        return Some(why);
    }
    let advs: Vec<Option<&AdvSpec>> = specs.iter().map(|s| s.adv.as_ref()).collect();
    if let Some(why) = adversarial::unstackable(&advs) {
        return Some(why);
    }
    for s in specs {
        if s.weights.init_from != first.weights.init_from
            || s.weights.freeze != first.weights.freeze
        {
            return Some("the jobs differ in init_from or freeze".into());
        }
        let same = s.epochs == first.epochs
            && s.max_steps == first.max_steps
            && s.batch == first.batch
            && s.loss == first.loss
            && s.eval_every == first.eval_every
            && s.log_every == first.log_every;
        if !same {
            return Some(
                "the jobs differ in epochs, max_steps, batch_size, loss, eval_every or log_every"
                    .into(),
            );
        }
    }
    let d0 = data.first()?;
    for d in data {
        if d.online.is_some() != d0.online.is_some() {
            return Some("the jobs mix online and fixed training data".into());
        }
        let shape = |d: &Dataset| {
            (
                d.sample_shape.clone(),
                d.task,
                d.train.n,
                d.test.n,
                d.train.targets.len(),
                d.extra
                    .iter()
                    .map(|(n, s)| (n.clone(), s.n))
                    .collect::<Vec<_>>(),
            )
        };
        if shape(d) != shape(d0) {
            return Some("the jobs' data differ in shape (sample shape, task, split sizes)".into());
        }
    }
    None
}

/// A member of the stacked model seen by its own callbacks: its parameters are copied out
/// only when a callback reads them.
struct MemberView<'a, S: Stacked> {
    model: &'a S,
    k: usize,
    one: OnceCell<S::One>,
    /// The stacked model's gradients, between backward and the update.
    grads: Option<&'a GradientsParams>,
}

impl<'a, S: Stacked> MemberView<'a, S> {
    fn new(model: &'a S, k: usize) -> Self {
        MemberView {
            model,
            k,
            one: OnceCell::new(),
            grads: None,
        }
    }
    fn with_grads(model: &'a S, k: usize, grads: &'a GradientsParams) -> Self {
        MemberView {
            grads: Some(grads),
            ..MemberView::new(model, k)
        }
    }
    /// The member as its own model, copied out on first use.
    fn member(&self) -> &S::One {
        self.one.get_or_init(|| self.model.member(self.k))
    }
    fn one(&self) -> NetView<'_, S::One> {
        NetView(self.member())
    }
}

impl<S: Stacked> ModelView for MemberView<'_, S> {
    fn save(&self, path: &Path) -> Result<()> {
        self.one().save(path)
    }
    fn read(&self, names: &[String]) -> Vec<super::trainer::HostTensor> {
        self.one().read(names)
    }
    /// The member's slice of the stacked gradients, keyed by its copy's parameters.
    fn read_grads(
        &self,
        names: &[String],
        grads: &GradientsParams,
    ) -> Vec<super::trainer::HostTensor> {
        match self.grads {
            Some(stacked) => {
                let own = member_grads(self.model, self.member(), self.k, stacked);
                self.one().read_grads(names, &own)
            }
            None => self.one().read_grads(names, grads),
        }
    }
    fn read_f64(&self, names: &[String]) -> Vec<Vec<f64>> {
        self.one().read_f64(names)
    }
    fn hidden(&self, x: &[f32], rows: usize) -> Vec<(String, usize, Vec<f32>)> {
        self.one().hidden(x, rows)
    }
    fn streams(&self) -> Vec<u64> {
        self.one().streams()
    }
}

/// Member `k`'s gradients from the stacked model's, keyed by the parameters of `one` (its
/// copy): the stacked gradients are sliced as `Stacked::member` slices weights.
fn member_grads<S: Stacked>(
    model: &S,
    one: &S::One,
    k: usize,
    stacked: &GradientsParams,
) -> GradientsParams {
    struct AsGrads<'a>(&'a GradientsParams);
    impl ModuleMapper for AsGrads<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (id, tensor, mapper) = param.consume();
            let train = tensor.is_require_grad();
            let value = match self.0.get::<D>(id) {
                Some(g) => Tensor::from_inner(g),
                None => tensor.detach(),
            };
            let value = if train { value.require_grad() } else { value };
            Param::from_mapped_value(id, value, mapper)
        }
    }
    struct Register {
        ids: Vec<ParamId>,
        at: usize,
        out: GradientsParams,
    }
    impl ModuleVisitor for Register {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if !param.is_require_grad() {
                return;
            }
            if let Some(id) = self.ids.get(self.at) {
                self.out.register::<D>(*id, param.val().inner());
            }
            self.at += 1;
        }
    }
    let mut reg = Register {
        ids: member_optim::trainable_ids(one),
        at: 0,
        out: GradientsParams::new(),
    };
    model
        .clone()
        .map(&mut AsGrads(stacked))
        .member(k)
        .visit(&mut reg);
    reg.out
}

/// Member `k`'s share of the batch's optimizer state, keyed by the parameters of the copy
/// its checkpoint saves.
struct MemberOptimView<'a, S: Stacked> {
    optim: &'a MemberOptim,
    view: &'a MemberView<'a, S>,
}

impl<S: Stacked> OptimState for MemberOptimView<'_, S> {
    fn save(&self, path: &Path) -> Result<()> {
        let v = self.view;
        self.optim.save_member(v.model, v.member(), v.k, path)
    }
}

/// What one member has seen so far.
#[derive(Default)]
struct Tally {
    done: bool,
    outcome: Option<Outcome>,
    sum_loss: f64,
    seen: usize,
    win_carry: f64,
    win_seen: usize,
    win_base: f64,
    last_train: Vec<(String, f64)>,
    last_eval: Vec<(String, f64)>,
    lr: f64,
    /// `early_stopping`'s best value and evaluations without improvement.
    es_best: Option<f64>,
    es_waited: usize,
}

impl Tally {
    /// How this member's training ended, at `step` of `epoch`.
    fn ended(&self, status: Status, step: usize, epoch: usize, step_ms: &[f64]) -> Outcome {
        Outcome {
            status,
            steps: step,
            epochs: epoch,
            last_train: self.last_train.clone(),
            last_eval: self.last_eval.clone(),
            step_ms: step_ms.to_vec(),
            stopped_early: None,
        }
    }
}

/// Trains the members of `model` (stacked in the members' order) together; returns each
/// member's outcome. A member whose loss turns NaN or infinite ends there, diverged, as it
/// would alone; the others go on.
pub fn fit<S: Stacked>(
    mut members: Vec<Member<'_>>,
    mut model: S,
    device: Device,
    stop: Arc<AtomicBool>,
) -> Result<Vec<Outcome>> {
    {
        let specs: Vec<&TrainSpec> = members.iter().map(|m| m.spec).collect();
        let data: Vec<&Dataset> = members.iter().map(|m| m.data).collect();
        if let Some(why) = unsupported(&specs, &data) {
            bail!("these jobs cannot train as one batch: {why}");
        }
    }
    let k = members.len();
    let first = members[0].spec;
    let d0 = members[0].data;
    let task = d0.task;
    let features = d0.features();
    let n = d0.train.n;
    let ad = device.clone().autodiff();
    let outputs_w = d0.train.targets.len() / n.max(1);
    // Every member's training split, one after the other: member j's sample i is row j n + i.
    let stack = |splits: &[&Split]| {
        let cat = |f: &dyn Fn(&Split) -> &[f32]| -> Vec<f32> {
            splits.iter().flat_map(|s| f(s).iter().copied()).collect()
        };
        let x = Tensor::<2>::from_data(TensorData::new(cat(&|s| &s.x), [k * n, features]), &ad);
        let y = Tensor::<1, Int>::from_data(
            TensorData::new(
                splits
                    .iter()
                    .flat_map(|s| s.y.iter().copied())
                    .collect::<Vec<i64>>(),
                [k * n],
            ),
            &ad,
        );
        let t = (outputs_w > 0).then(|| {
            Tensor::<2>::from_data(
                TensorData::new(cat(&|s| &s.targets), [k * n, outputs_w]),
                &ad,
            )
        });
        (x, y, t)
    };
    let (mut x_all, mut y_all, mut t_all) =
        stack(&members.iter().map(|m| &m.data.train).collect::<Vec<_>>());
    // Evaluation runs each member alone, through the single-run code.
    let evaluators: Vec<Trainer> = members
        .iter()
        .map(|m| Trainer {
            spec: m.spec,
            data: m.data,
            device: device.clone(),
            callbacks: vec![],
            stop: stop.clone(),
            resume: None,
        })
        .collect();
    let tests: Vec<OnDevice> = members
        .iter()
        .map(|m| upload(&m.data.test, features, &device))
        .collect();
    let extras: Vec<Vec<(String, OnDevice)>> = members
        .iter()
        .map(|m| {
            m.data
                .extra
                .iter()
                .map(|(name, s)| (name.clone(), upload(s, features, &device)))
                .collect()
        })
        .collect();
    let mut optim = MemberOptim::new(
        &members
            .iter()
            .map(|m| &m.spec.optim)
            .collect::<Vec<&OptimSpec>>(),
    );

    // Each member's weight metrics, measured from its own initial weights.
    let mut metrics = vec![];
    for m in &members {
        metrics.push(if m.spec.weight_metrics.is_empty() {
            None
        } else {
            let j = metrics.len();
            let init = model.member(j);
            let params = param_names(&init);
            let selected = crate::track::Tracker::select(&m.spec.weight_metrics, &params)?;
            Some(crate::track::measure::WeightMetrics::new(
                &selected,
                &params,
                &m.data.features,
                &NetView(&init),
            ))
        });
    }
    let spe = evaluators[0].steps_per_epoch();
    let total = first.max_steps.unwrap_or(first.epochs * spe);
    let epochs = total.div_ceil(spe);
    let params = param_names(&model.member(0));
    for (j, m) in members.iter_mut().enumerate() {
        let view = MemberView::new(&model, j);
        let eval_names: Vec<String> = evaluators[j]
            .eval_names()
            .into_iter()
            .chain(metrics[j].iter().flat_map(|w| w.names()))
            .collect();
        if let Some(es) = &m.spec.early_stopping {
            if !eval_names.contains(&es.monitor) {
                bail!(
                    "early_stopping.monitor: this run does not evaluate '{}'; it evaluates {}",
                    es.monitor,
                    eval_names.join(", ")
                );
            }
        }
        let info = StartInfo {
            epochs,
            total_steps: total,
            steps_per_epoch: spe,
            start_epoch: 0,
            start_step: 0,
            eval_names,
            num_params: params
                .iter()
                .map(|(_, s)| s.iter().product::<usize>())
                .sum(),
            model: &view,
            frozen: m.spec.weights.frozen(&params),
            init_from: m.spec.weights.init_from.as_deref(),
            params: params.clone(),
        };
        for cb in m.callbacks.iter_mut() {
            cb.on_train_start(&info)?;
        }
    }
    let mut tally: Vec<Tally> = (0..k)
        .map(|j| Tally {
            lr: members[j].spec.optim.lr,
            ..Tally::default()
        })
        .collect();
    // Each member's training attack (the members agree on whether there is one).
    let attacks: Option<Vec<&AdvSpec>> = members
        .iter()
        .map(|m| m.spec.adv.as_ref().filter(|a| a.train))
        .collect();
    let mut step_ms = Vec::with_capacity(total);
    let batch = first.batch.rows(n);
    let (mut epoch, mut step) = (0, 0);
    let full = first.batch == BatchSize::Full;
    let mut full_x = full.then(|| x_all.clone().reshape([k, n, features]));
    'epochs: while epoch < epochs && step < total {
        // Online data: each member's own fresh samples for this epoch, as alone.
        if epoch > 0 && d0.online.is_some() {
            let mut fresh = vec![];
            for m in &members {
                let Some(online) = &m.data.online else {
                    bail!("a batch mixes online and fixed training data");
                };
                let split = (online.0)(epoch);
                if split.n != n {
                    bail!(
                        "online data gave {} samples for epoch {epoch}, expected {n}",
                        split.n
                    );
                }
                fresh.push(split);
            }
            (x_all, y_all, t_all) = stack(&fresh.iter().collect::<Vec<_>>());
            full_x = full.then(|| x_all.clone().reshape([k, n, features]));
        }
        // Each member's order depends only on its seed and the epoch, as in a single run.
        let orders: Vec<Vec<i64>> = members
            .iter()
            .map(|m| {
                let mut order: Vec<i64> = (0..n as i64).collect();
                if first.batch != BatchSize::Full {
                    let mut rng = StdRng::seed_from_u64(
                        m.spec.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (epoch as u64 + 1),
                    );
                    order.shuffle(&mut rng);
                }
                order
            })
            .collect();
        let mut correct_dev: Option<Tensor<1>> = None;
        for t in tally.iter_mut() {
            (t.sum_loss, t.seen, t.win_base) = (0.0, 0, 0.0);
        }
        for b in 0..spe {
            if step >= total {
                break;
            }
            if stop.load(Ordering::SeqCst) {
                for (j, m) in members.iter_mut().enumerate() {
                    if tally[j].done {
                        continue;
                    }
                    let view = MemberView::new(&model, j);
                    let at = Boundary {
                        epoch,
                        batch: b,
                        step,
                        model: &view,
                        optim: &MemberOptimView {
                            optim: &optim,
                            view: &view,
                        },
                    };
                    for cb in m.callbacks.iter_mut() {
                        cb.on_interrupt(&at)?;
                    }
                    tally[j].outcome =
                        Some(tally[j].ended(Status::Interrupted, step, epoch, &step_ms));
                }
                break 'epochs;
            }
            let t0 = Instant::now();
            let lo = b * batch;
            let hi = ((b + 1) * batch).min(n);
            let rows = hi - lo;
            let (x, idx) = match &full_x {
                Some(x) => (x.clone(), None),
                None => {
                    let idx: Vec<i64> = orders
                        .iter()
                        .enumerate()
                        .flat_map(|(j, o)| o[lo..hi].iter().map(move |i| i + (j * n) as i64))
                        .collect();
                    let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [k * rows]), &ad);
                    let x = x_all
                        .clone()
                        .select(0, idx.clone())
                        .reshape([k, rows, features]);
                    (x, Some(idx))
                }
            };
            let y = match &idx {
                Some(i) => y_all.clone().select(0, i.clone()),
                None => y_all.clone(),
            };
            let target = match (&t_all, &idx) {
                (Some(t), Some(i)) => t.clone().select(0, i.clone()),
                (Some(t), None) => t.clone(),
                (None, _) => x.clone().reshape([k * rows, features]),
            };
            for (j, m) in members.iter().enumerate() {
                tally[j].lr = m.spec.schedule.lr(m.spec.optim.lr, step, epoch, total);
            }
            let x = match &attacks {
                Some(a) => adversarial::perturb_stacked(&model, x, y.clone(), a, first.loss, task),
                None => x,
            };
            let out = model.forward(x);
            let outs = out.dims()[2];
            let out = out.reshape([k * rows, outs]);
            let each = loss::per_sample(first.loss, task, out.clone(), y.clone(), target);
            let per_member: Tensor<1> = each.reshape([k, rows]).mean_dim(1).reshape([k]);
            if let Some(h) = loss::hits(task, out.detach(), y) {
                let c: Tensor<1> = h.reshape([k, rows]).sum_dim(1).reshape([k]);
                correct_dev = Some(match correct_dev.take() {
                    Some(a) => a + c,
                    None => c,
                });
            }
            let losses: Vec<f64> = per_member
                .clone()
                .detach()
                .into_data()
                .convert::<f64>()
                .try_to_vec::<f64>()
                .unwrap_or_default();
            // A member whose loss is not finite ends here, before this step's update.
            for (j, m) in members.iter_mut().enumerate() {
                let l = losses.get(j).copied().unwrap_or(f64::NAN);
                if tally[j].done || l.is_finite() {
                    continue;
                }
                tally[j].done = true;
                let o = tally[j].ended(Status::Diverged { step, loss: l }, step, epoch, &step_ms);
                let view = MemberView::new(&model, j);
                for cb in m.callbacks.iter_mut() {
                    cb.on_train_end(&o, &view)?;
                }
                tally[j].outcome = Some(o);
            }
            if tally.iter().all(|t| t.done) {
                break 'epochs;
            }
            // Members are independent, so the gradient of the sum is each member's own.
            let grads = GradientsParams::from_grads(per_member.sum().backward(), &model);
            let mut grads = grads;
            for (j, m) in members.iter_mut().enumerate() {
                if tally[j].done {
                    continue;
                }
                let view = MemberView::with_grads(&model, j, &grads);
                for cb in m.callbacks.iter_mut() {
                    cb.on_after_backward(step, &view, &grads)?;
                }
            }
            let lrs: Vec<f64> = tally.iter().map(|t| t.lr).collect();
            model = optim.step(model, &mut grads, &lrs);
            let _ = ad.sync();
            step_ms.push(t0.elapsed().as_secs_f64() * 1e3);
            step += 1;
            let report = step.is_multiple_of(first.log_every.max(1));
            let correct: Option<Vec<f64>> = match (&correct_dev, report) {
                (Some(c), true) => c
                    .clone()
                    .into_data()
                    .convert::<f64>()
                    .try_to_vec::<f64>()
                    .ok(),
                _ => None,
            };
            for (j, m) in members.iter_mut().enumerate() {
                let t = &mut tally[j];
                if t.done {
                    continue;
                }
                t.sum_loss += losses[j] * rows as f64;
                t.seen += rows;
                t.win_seen += rows;
                let acc = correct.as_ref().map(|c| {
                    let a = (t.win_carry + c[j] - t.win_base) / t.win_seen.max(1) as f64;
                    (t.win_base, t.win_carry, t.win_seen) = (c[j], 0.0, 0);
                    a
                });
                let view = MemberView::new(&model, j);
                let s = StepInfo {
                    step,
                    epoch,
                    loss: losses[j],
                    acc,
                    lr: t.lr,
                    model: &view,
                };
                for cb in m.callbacks.iter_mut() {
                    cb.on_batch_end(&s)?;
                }
            }
        }
        let sums: Vec<f64> = match correct_dev {
            Some(c) => c
                .into_data()
                .convert::<f64>()
                .try_to_vec::<f64>()
                .unwrap_or_default(),
            None => vec![0.0; k],
        };
        epoch += 1;
        let last = epoch >= epochs || step >= total;
        let evaluate = last || epoch.is_multiple_of(first.eval_every.max(1));
        for (j, m) in members.iter_mut().enumerate() {
            let t = &mut tally[j];
            if t.done {
                continue;
            }
            let sum_correct = sums.get(j).copied().unwrap_or(0.0);
            t.win_carry += sum_correct - t.win_base;
            let train_loss = t.sum_loss / t.seen.max(1) as f64;
            let train_acc = task
                .has_labels()
                .then(|| sum_correct / t.seen.max(1) as f64);
            t.last_train = vec![("train_loss".to_string(), train_loss)];
            if let Some(a) = train_acc {
                t.last_train.push(("train_acc".into(), a));
            }
            let view = MemberView::new(&model, j);
            let mut eval = vec![];
            let mut stopped_early = None;
            if evaluate {
                // The copy the epoch's callbacks read too.
                let one = view.member();
                eval = evaluators[j].evaluate_all(one, &tests[j], &extras[j]);
                if let Some(w) = &metrics[j] {
                    eval.extend(w.measure(&NetView(one)));
                }
                t.last_eval = eval.clone();
                if let Some(es) = &m.spec.early_stopping {
                    if let Some((_, v)) = eval.iter().find(|(n, _)| *n == es.monitor) {
                        stopped_early = es.check(*v, &mut t.es_best, &mut t.es_waited);
                    }
                }
            }
            // It ended anyway: not early.
            let stopped_early = stopped_early.filter(|_| !last);
            let e = EpochInfo {
                epoch,
                step,
                lr: t.lr,
                train_loss,
                train_acc,
                eval,
                last: last || stopped_early.is_some(),
                model: &view,
                optim: &MemberOptimView {
                    optim: &optim,
                    view: &view,
                },
            };
            for cb in m.callbacks.iter_mut() {
                cb.on_epoch_end(&e)?;
            }
            // A member that stops early ends here, as alone; the others go on.
            if let Some(why) = stopped_early {
                t.done = true;
                let o = Outcome {
                    stopped_early: Some(format!("stopped early at step {step}: {why}")),
                    ..t.ended(Status::Completed, step, epoch, &step_ms)
                };
                for cb in m.callbacks.iter_mut() {
                    cb.on_train_end(&o, &view)?;
                }
                t.outcome = Some(o);
            }
        }
        if tally.iter().all(|t| t.done) {
            break;
        }
    }
    let mut outcomes = vec![];
    for (j, m) in members.iter_mut().enumerate() {
        let t = &mut tally[j];
        let o = match t.outcome.take() {
            Some(o) if t.done => {
                outcomes.push(o);
                continue;
            }
            Some(o) => o,
            None => t.ended(Status::Completed, step, epoch, &step_ms),
        };
        let view = MemberView::new(&model, j);
        for cb in m.callbacks.iter_mut() {
            cb.on_train_end(&o, &view)?;
        }
        outcomes.push(o);
    }
    Ok(outcomes)
}
