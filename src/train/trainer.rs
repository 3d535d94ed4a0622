//! The training loop: epochs of (optionally adversarial) mini-batch or full-batch steps,
//! test evaluation, NaN and Ctrl-C handling. Everything observable goes to `Callback`s.

use super::{adversarial, loss, optim, BatchSize, TrainSpec};
use crate::data::{Dataset, Split, Task};
use crate::model::{param_names, Net};
use anyhow::{Context, Result};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// After each optimizer step.
pub struct StepInfo<'a> {
    /// Steps done so far (1 after the first step).
    pub step: usize,
    /// 0-based epoch this step belongs to.
    pub epoch: usize,
    /// Mean loss of this step's batch.
    pub loss: f64,
    /// Training accuracy over the steps since the previous report; reported (read from
    /// the device) only every `log_every` steps, None otherwise and for reconstruction.
    pub acc: Option<f64>,
    /// Learning rate this step used.
    pub lr: f64,
    /// The weights after this step.
    pub model: &'a dyn ModelView,
}

/// A parameter copied to the host: row-major values, in the order the names were given.
pub struct HostTensor {
    /// Row-major values.
    pub values: Vec<f32>,
}

/// What a model offers callbacks without exposing its type.
pub trait ModelView {
    /// Saves the parameters as a burnpack file.
    fn save(&self, path: &Path) -> Result<()>;
    /// Copies the named parameters to the host, in module order.
    fn read(&self, names: &[String]) -> Vec<HostTensor>;
    /// Copies the gradients of the named parameters (those that have one) to the host.
    fn read_grads(&self, names: &[String], grads: &GradientsParams) -> Vec<HostTensor>;
    /// The named parameters at full precision (float64 runs keep theirs), in module order.
    fn read_f64(&self, names: &[String]) -> Vec<Vec<f64>> {
        self.read(names)
            .into_iter()
            .map(|t| t.values.into_iter().map(f64::from).collect())
            .collect()
    }
    /// The model's named intermediate outputs (`Net::hidden`) on `x`, `rows` samples
    /// row-major, at evaluation (no dropout): `(name, units, rows x units values)`. None
    /// for a model seen only as a `Module` (a hand-written loop's).
    fn hidden(&self, x: &[f32], rows: usize) -> Vec<(String, usize, Vec<f32>)> {
        let _ = (x, rows);
        vec![]
    }
    /// The model's random-stream positions (`Net::streams`), which a checkpoint keeps.
    fn streams(&self) -> Vec<u64> {
        vec![]
    }
}

/// A [`Net`] seen by callbacks: its parameters, and its intermediate outputs too.
pub struct NetView<'a, M: Net>(pub &'a M);

impl<M: Net> ModelView for NetView<'_, M> {
    fn save(&self, path: &Path) -> Result<()> {
        self.0.save(path)
    }
    fn streams(&self) -> Vec<u64> {
        self.0.streams()
    }
    fn read(&self, names: &[String]) -> Vec<HostTensor> {
        self.0.read(names)
    }
    fn read_grads(&self, names: &[String], grads: &GradientsParams) -> Vec<HostTensor> {
        self.0.read_grads(names, grads)
    }
    fn read_f64(&self, names: &[String]) -> Vec<Vec<f64>> {
        self.0.read_f64(names)
    }
    fn hidden(&self, x: &[f32], rows: usize) -> Vec<(String, usize, Vec<f32>)> {
        let valid = self.0.valid();
        let Some(device) = valid.devices().into_iter().next() else {
            return vec![];
        };
        let cols = x.len() / rows.max(1);
        let t = Tensor::<2>::from_data(TensorData::new(x.to_vec(), [rows, cols]), &device);
        valid
            .hidden(t)
            .into_iter()
            .map(|(name, h)| {
                let units = h.dims()[1];
                let values = h
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .unwrap_or_default();
                (name, units, values)
            })
            .collect()
    }
}

/// Walks the float parameters with their dotted paths and copies those named (or their
/// gradients) to the host, in module order.
struct Reader<'a> {
    path: crate::model::ParamPath,
    names: &'a [String],
    grads: Option<&'a GradientsParams>,
    out: Vec<TensorData>,
}

impl<'a> Reader<'a> {
    fn collect<M: Module>(
        model: &M,
        names: &'a [String],
        grads: Option<&'a GradientsParams>,
    ) -> Vec<TensorData> {
        let mut r = Reader {
            path: Default::default(),
            names,
            grads,
            out: vec![],
        };
        model.visit(&mut r);
        r.out
    }
}

impl burn::module::ModuleVisitor for Reader<'_> {
    fn enter_module(&mut self, name: &str, container: &str) {
        self.path.enter(name, container);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
        if !self.names.contains(&self.path.dotted()) {
            return;
        }
        let t = match self.grads {
            None => Some(p.val()),
            Some(g) => g.get::<D>(p.id),
        };
        if let Some(t) = t {
            self.out.push(t.into_data());
        }
    }
}

/// Host copies as float32 values.
fn host_f32(data: Vec<TensorData>) -> Vec<HostTensor> {
    data.into_iter()
        .map(|d| HostTensor {
            values: d.convert::<f32>().try_into_vec::<f32>().unwrap_or_default(),
        })
        .collect()
}

impl<M: Module + Clone> ModelView for M {
    fn save(&self, path: &Path) -> Result<()> {
        self.clone()
            .save_file(path)
            .map_err(|e| anyhow::anyhow!("saving the model to {}: {e:?}", path.display()))
    }
    fn read(&self, names: &[String]) -> Vec<HostTensor> {
        host_f32(Reader::collect(self, names, None))
    }
    fn read_f64(&self, names: &[String]) -> Vec<Vec<f64>> {
        Reader::collect(self, names, None)
            .into_iter()
            .map(|d| d.convert::<f64>().try_into_vec::<f64>().unwrap_or_default())
            .collect()
    }
    fn read_grads(&self, names: &[String], grads: &GradientsParams) -> Vec<HostTensor> {
        host_f32(Reader::collect(self, names, Some(grads)))
    }
}

/// After each epoch (and its evaluation, if any).
pub struct EpochInfo<'a> {
    /// Epochs done so far (1 after the first).
    pub epoch: usize,
    /// Steps done so far.
    pub step: usize,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Training accuracy over the epoch (None for reconstruction).
    pub train_acc: Option<f64>,
    /// `(name, value)` pairs: `test_loss`, `test_acc`, `robust_acc`, `robust_loss`, `<extra>_loss` ...; empty when
    /// this epoch was not evaluated.
    pub eval: Vec<(String, f64)>,
    /// This is the last epoch of the run.
    pub last: bool,
    /// The weights after the epoch.
    pub model: &'a dyn ModelView,
    /// The optimizer's state (for checkpoints).
    pub optim: &'a dyn OptimState,
}

/// An optimizer's state as a checkpoint saves it: burn's optimizer, or one member's share of
/// a batched sweep's optimizer.
pub trait OptimState {
    /// Writes the state as burn's optimizer record (burnpack) at `path`.
    fn save(&self, path: &Path) -> Result<()>;
}

impl OptimState for ModuleOptimizer {
    fn save(&self, path: &Path) -> Result<()> {
        ModuleOptimizer::save(self, path)
            .map_err(|err| anyhow::anyhow!("saving optimizer state: {err:?}"))
    }
}

/// Where an interrupted run stopped, between two batches: a consistent point to checkpoint,
/// since an epoch's batch order depends only on the seed and the epoch.
pub struct Boundary<'a> {
    /// Epochs done so far.
    pub epoch: usize,
    /// Batches done of the next epoch (0 at an epoch boundary).
    pub batch: usize,
    /// Steps done so far.
    pub step: usize,
    /// The weights at the stop.
    pub model: &'a dyn ModelView,
    /// The optimizer's state at the stop.
    pub optim: &'a dyn OptimState,
}

/// Before the first step.
pub struct StartInfo<'a> {
    /// Epochs the run will train.
    pub epochs: usize,
    /// Optimizer steps the run will take.
    pub total_steps: usize,
    /// Batches per epoch.
    pub steps_per_epoch: usize,
    /// Epoch training starts at (non-zero when resumed).
    pub start_epoch: usize,
    /// Step training starts at (non-zero when resumed).
    pub start_step: usize,
    /// Evaluation metric names, in the order `EpochInfo::eval` reports them.
    pub eval_names: Vec<String>,
    /// Every float parameter's module path and shape, in module order.
    pub params: Vec<(String, Vec<usize>)>,
    /// Number of parameter values.
    pub num_params: usize,
    /// The weights before the first step of this session (initialisation, or the checkpoint).
    pub model: &'a dyn ModelView,
    /// Parameter values `freeze` keeps from training.
    pub frozen: usize,
    /// The PyTorch state dict the weights came from (not on a resume: the checkpoint's).
    pub init_from: Option<&'a Path>,
}

/// How training ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// Every epoch (or `max_steps`) ran.
    Completed,
    /// Loss became NaN or infinite at this step.
    Diverged {
        /// The step whose loss was not finite.
        step: usize,
        /// That loss.
        loss: f64,
    },
    /// Ctrl-C: stopped at the next batch boundary.
    Interrupted,
}

impl Status {
    /// `completed`, `diverged` or `interrupted`, as `summary.json` writes it.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Completed => "completed",
            Status::Diverged { .. } => "diverged",
            Status::Interrupted => "interrupted",
        }
    }
}

/// What a finished training reports.
pub struct Outcome {
    /// How it ended.
    pub status: Status,
    /// Optimizer steps done.
    pub steps: usize,
    /// Epochs done.
    pub epochs: usize,
    /// `train_loss` (and `train_acc`) of the last epoch.
    pub last_train: Vec<(String, f64)>,
    /// The last evaluation's metrics.
    pub last_eval: Vec<(String, f64)>,
    /// Wall time of each step, in milliseconds (forward, backward, update, synced).
    pub step_ms: Vec<f64>,
    /// Why training ended before its last epoch (`early_stopping`), if it did.
    pub stopped_early: Option<String>,
}

/// Hooks the trainer calls; every one defaults to doing nothing, and an error stops training.
pub trait Callback {
    /// Before the first step (after loading a checkpoint when resumed).
    fn on_train_start(&mut self, _info: &StartInfo) -> Result<()> {
        Ok(())
    }
    /// Between backward and the update: `grads` are the gradients at the weights of step
    /// `step` (the weights `on_batch_end` reported for that step).
    fn on_after_backward(
        &mut self,
        _step: usize,
        _model: &dyn ModelView,
        _grads: &GradientsParams,
    ) -> Result<()> {
        Ok(())
    }
    /// After each optimizer step.
    fn on_batch_end(&mut self, _s: &StepInfo) -> Result<()> {
        Ok(())
    }
    /// After each epoch and its evaluation.
    fn on_epoch_end(&mut self, _e: &EpochInfo) -> Result<()> {
        Ok(())
    }
    /// A stop request (Ctrl-C, SIGTERM) was honoured between two batches; called before
    /// `on_train_end`, so a checkpoint can capture exactly where training stopped.
    fn on_interrupt(&mut self, _at: &Boundary) -> Result<()> {
        Ok(())
    }
    /// Called however training ended, so callbacks flush what they hold; `model` holds
    /// the last weights.
    fn on_train_end(&mut self, _o: &Outcome, _model: &dyn ModelView) -> Result<()> {
        Ok(())
    }
}

/// Where a resumed run picks up: weights, optimizer state, and the counters.
pub struct ResumePoint {
    pub model: PathBuf,
    pub optim: PathBuf,
    pub epoch: usize,
    /// Batches of epoch `epoch` already trained (a run stopped mid-epoch): skipped.
    pub batch: usize,
    pub step: usize,
    /// The model's random-stream positions at the stop (`Net::streams`).
    pub streams: Vec<u64>,
}

impl ResumePoint {
    /// The checkpoint's weights into `model` and its optimizer state into `opt`.
    fn load<M: Net>(&self, model: M, opt: ModuleOptimizer) -> Result<(M, ModuleOptimizer)> {
        let model = model.try_load_file(&self.model).map_err(|e| {
            anyhow::anyhow!("loading checkpoint weights {}: {e:?}", self.model.display())
        })?;
        let opt = opt.load(&self.optim).map_err(|e| {
            anyhow::anyhow!("loading optimizer state {}: {e:?}", self.optim.display())
        })?;
        Ok((model, opt))
    }
}

pub struct Trainer<'a> {
    pub spec: &'a TrainSpec,
    pub data: &'a Dataset,
    /// The plain device; training runs on its autodiff twin.
    pub device: Device,
    pub callbacks: Vec<Box<dyn Callback + 'a>>,
    pub stop: Arc<AtomicBool>,
    pub resume: Option<ResumePoint>,
}

/// A split on a device: `[n, features]` floats and `[n]` labels.
pub(super) struct OnDevice {
    x: Tensor<2>,
    y: Tensor<1, Int>,
    /// Regression targets `[n, outputs]`.
    t: Option<Tensor<2>>,
    /// Their total sum of squares about each target's mean (R²'s denominator).
    sst: Option<f64>,
    /// Their sum of squares (the relative MSE's denominator).
    ssq: Option<f64>,
    n: usize,
}

impl OnDevice {
    /// What the loss compares the output with: the regression targets, else the input
    /// (reconstruction; the classification losses read `y`).
    fn target(&self, x: &Tensor<2>, rows: Option<&Tensor<1, Int>>) -> Tensor<2> {
        match (&self.t, rows) {
            (Some(t), Some(idx)) => t.clone().select(0, idx.clone()),
            (Some(t), None) => t.clone(),
            (None, _) => x.clone(),
        }
    }
}

pub(super) fn upload(s: &Split, features: usize, device: &Device) -> OnDevice {
    let x = Tensor::<2>::from_data(TensorData::new(s.x.clone(), [s.n, features]), device);
    let y = Tensor::<1, Int>::from_data(TensorData::new(s.y.clone(), [s.n]), device);
    let w = s.targets.len() / s.n.max(1);
    let t = (!s.targets.is_empty() && s.n > 0)
        .then(|| Tensor::<2>::from_data(TensorData::new(s.targets.clone(), [s.n, w]), device));
    let sst = t.as_ref().map(|_| {
        (0..w)
            .map(|j| {
                let col = s.targets.iter().skip(j).step_by(w).map(|v| *v as f64);
                let mean = col.clone().sum::<f64>() / s.n as f64;
                col.map(|v| (v - mean).powi(2)).sum::<f64>()
            })
            .sum()
    });
    let ssq = t
        .as_ref()
        .map(|_| s.targets.iter().map(|v| (*v as f64).powi(2)).sum());
    OnDevice {
        x,
        y,
        t,
        sst,
        ssq,
        n: s.n,
    }
}

impl<'a> Trainer<'a> {
    pub(super) fn steps_per_epoch(&self) -> usize {
        match self.spec.batch {
            BatchSize::Full => 1,
            BatchSize::N(b) => self.data.train.n.div_ceil(b.max(1)),
        }
    }

    pub(super) fn eval_names(&self) -> Vec<String> {
        let labelled = self.data.task != Task::Reconstruct;
        let acc = self.acc_name();
        let mut v = vec![];
        if self.data.test.n > 0 {
            v.push("test_loss".to_string());
        }
        if labelled && self.data.test.n > 0 {
            v.push(format!("test_{acc}"));
            if matches!(self.data.task, Task::Regress { .. }) {
                v.push("test_rel_mse".into());
            }
            if self.spec.adv.as_ref().is_some_and(|a| a.eval_steps > 0) {
                v.push("robust_acc".into());
                v.push("robust_loss".into());
            }
        }
        for (name, _) in &self.data.extra {
            v.push(format!("{name}_loss"));
            if labelled {
                v.push(format!("{name}_{acc}"));
            } else {
                v.push(format!("{name}_auroc"));
            }
        }
        v
    }

    /// `acc` for classification, `r2` (the coefficient of determination) for regression.
    fn acc_name(&self) -> &'static str {
        match self.data.task {
            Task::Regress { .. } => "r2",
            _ => "acc",
        }
    }

    /// Mean loss and accuracy (R² in regression) over a split, in chunks, without autodiff;
    /// for reconstruction also each sample's anomaly score `sum (Y - X)^2`; in regression
    /// also the relative MSE `Σ (f - y)² / Σ y²`.
    fn evaluate<M: Net>(
        &self,
        model: &M,
        d: &OnDevice,
    ) -> (f64, Option<f64>, Vec<f32>, Option<f64>) {
        let valid = model.valid();
        let task = self.data.task;
        let (mut loss_sum, mut correct, chunk) = (0.0, 0.0, 2048);
        // R² = 1 - SSE / SST, SST about each target's mean over the split.
        let mut sse = 0.0f64;
        let sst = d.sst;
        let mut scores = vec![];
        let mut start = 0;
        while start < d.n {
            let len = chunk.min(d.n - start);
            let x = d.x.clone().narrow(0, start, len);
            let y = d.y.clone().narrow(0, start, len);
            let out = valid.forward(x.clone());
            if task == Task::Reconstruct {
                let s = (out.clone() - x.clone()).powf_scalar(2.0).sum_dim(1);
                scores.extend(
                    s.into_data()
                        .convert::<f32>()
                        .try_into_vec::<f32>()
                        .unwrap_or_default(),
                );
            }
            let target = match &d.t {
                Some(t) => t.clone().narrow(0, start, len),
                None => x,
            };
            if sst.is_some() {
                let e = (out.clone() - target.clone()).powf_scalar(2.0).sum();
                sse += e.into_scalar::<f64>();
            }
            let l = loss::loss(self.spec.loss, task, out.clone(), y.clone(), target);
            loss_sum += l.into_scalar::<f64>() * len as f64;
            if let Some(c) = loss::correct(task, out, y) {
                correct += c.into_scalar::<f64>();
            }
            start += len;
        }
        let n = d.n.max(1) as f64;
        let acc = match sst {
            Some(sst) => Some(1.0 - sse / sst.max(f64::MIN_POSITIVE)),
            None => task.has_labels().then_some(correct / n),
        };
        let rel = d.ssq.map(|q| sse / q.max(f64::MIN_POSITIVE));
        (loss_sum / n, acc, scores, rel)
    }

    /// Loss and accuracy under PGD with `eval_steps` steps on the test split, whatever
    /// attack trains.
    fn robust_eval<M: Net>(&self, model: &M, d: &OnDevice) -> (f64, f64) {
        let Some(adv) = &self.spec.adv else {
            return (0.0, 0.0);
        };
        let attack = adv.eval_attack();
        // The attack sees the model in eval mode, as PyTorch's robust evaluation after
        // `model.eval()`: dropout draws no mask and batch norm reads its running statistics,
        // which the test split's adversarial batches must not move.
        let eval_mode = model.clone().freeze();
        let valid = model.valid();
        let (mut correct, mut loss_sum, chunk, mut start) = (0.0, 0.0, 1024, 0);
        while start < d.n {
            let len = chunk.min(d.n - start);
            let x = d.x.clone().narrow(0, start, len).autodiff();
            let y = d.y.clone().narrow(0, start, len);
            let xa = adversarial::perturb(
                &eval_mode,
                x,
                y.clone(),
                &attack,
                self.spec.loss,
                self.data.task,
            );
            let xa = xa.without_autodiff();
            let out = valid.forward(xa.clone());
            let l = loss::loss(self.spec.loss, self.data.task, out.clone(), y.clone(), xa);
            loss_sum += l.into_scalar::<f64>() * len as f64;
            if let Some(c) = loss::correct(self.data.task, out, y) {
                correct += c.into_scalar::<f64>();
            }
            start += len;
        }
        let n = d.n.max(1) as f64;
        (loss_sum / n, correct / n)
    }

    /// Every evaluation metric, in `eval_names` order: the test split (and robust accuracy),
    /// then each extra split (with AUROC against the test split's scores for anomalies).
    pub(super) fn evaluate_all<M: Net>(
        &self,
        model: &M,
        test: &OnDevice,
        extra: &[(String, OnDevice)],
    ) -> Vec<(String, f64)> {
        let mut eval = vec![];
        let (tl, ta, normal_scores, rel) = self.evaluate(model, test);
        if test.n > 0 {
            eval.push(("test_loss".to_string(), tl));
        }
        if let Some(a) = ta.filter(|_| test.n > 0) {
            eval.push((format!("test_{}", self.acc_name()), a));
            if let Some(r) = rel {
                eval.push(("test_rel_mse".into(), r));
            }
            if self.spec.adv.as_ref().is_some_and(|a| a.eval_steps > 0) {
                let (rl, ra) = self.robust_eval(model, test);
                eval.push(("robust_acc".into(), ra));
                eval.push(("robust_loss".into(), rl));
            }
        }
        for (name, d) in extra {
            let (l, a, scores, _) = self.evaluate(model, d);
            eval.push((format!("{name}_loss"), l));
            if let Some(a) = a {
                eval.push((format!("{name}_{}", self.acc_name()), a));
            }
            if !scores.is_empty() && !normal_scores.is_empty() {
                // Anomaly detection: higher reconstruction error = more anomalous.
                eval.push((format!("{name}_auroc"), auroc(&normal_scores, &scores)));
            }
        }
        eval
    }

    pub fn run<M: Net>(self, model: M) -> Result<Outcome> {
        self.fit(model).map(|(o, _)| o)
    }

    /// Trains `model`; returns how it ended and the trained model.
    pub fn fit<M: Net>(mut self, mut model: M) -> Result<(Outcome, M)> {
        let spec = self.spec;
        let task = self.data.task;
        let features = self.data.features();
        let ad = self.device.clone().autodiff();
        let mut train = upload(&self.data.train, features, &ad);
        let test = upload(&self.data.test, features, &self.device);
        let extra: Vec<(String, OnDevice)> = self
            .data
            .extra
            .iter()
            .map(|(n, s)| (n.clone(), upload(s, features, &self.device)))
            .collect();

        if matches!(task, Task::Regress { .. }) && spec.adv.is_some() {
            anyhow::bail!(
                "adversarial training and robust accuracy need class labels; this data is a \
                 regression (use adv=none)"
            );
        }
        let mut opt = optim::build(&spec.optim);
        let (mut epoch, mut step, mut skip) = (0, 0, 0);
        let resume = self.resume.take();
        // The initial weights: the seed's, or `init_from`'s. A resume replaces them with the
        // checkpoint's below, so it reads `init_from` only for the weight metrics.
        if let Some(p) = spec
            .weights
            .init_from
            .as_ref()
            .filter(|_| resume.is_none() || !spec.weight_metrics.is_empty())
        {
            let dict = crate::model::weights::read_state_dict(p)?;
            model = crate::model::weights::load(model, &spec.weights.model, &dict, p)?;
        }
        // Measured from the initial weights, also on a resume: the seed rebuilds them.
        let metrics = if spec.weight_metrics.is_empty() {
            None
        } else {
            let params = param_names(&model);
            let selected = crate::track::Tracker::select(&spec.weight_metrics, &params)?;
            Some(crate::track::measure::WeightMetrics::new(
                &selected,
                &params,
                &self.data.features,
                &NetView(&model),
            ))
        };
        if let Some(r) = resume {
            (model, opt) = r.load(model, opt)?;
            model.set_streams(&r.streams);
            (epoch, step, skip) = (r.epoch, r.step, r.batch);
        }
        // After a resume's load too: frozen parameters get no gradient, so no optimizer state.
        model = crate::model::weights::freeze(model, &spec.weights.freeze)?;

        let spe = self.steps_per_epoch();
        let total = match spec.max_steps {
            Some(m) => m,
            None => spec.epochs * spe,
        };
        let epochs = total.div_ceil(spe);
        let params = param_names(&model);
        let info = StartInfo {
            epochs,
            total_steps: total,
            steps_per_epoch: spe,
            start_epoch: epoch,
            start_step: step,
            eval_names: self
                .eval_names()
                .into_iter()
                .chain(metrics.iter().flat_map(|m| m.names()))
                .collect(),
            num_params: model.num_params(),
            model: &NetView(&model),
            frozen: spec.weights.frozen(&params),
            init_from: spec.weights.init_from.as_deref().filter(|_| step == 0),
            params,
        };
        if let Some(es) = &spec.early_stopping {
            if !info.eval_names.contains(&es.monitor) {
                let hint = crate::config::suggest::did_you_mean(
                    &es.monitor,
                    info.eval_names.iter().map(|s| s.as_str()),
                )
                .map(|s| format!(" Did you mean '{s}'?"))
                .unwrap_or_default();
                anyhow::bail!(
                    "early_stopping.monitor: this run does not evaluate '{}'.{hint} It evaluates {}",
                    es.monitor,
                    if info.eval_names.is_empty() {
                        "nothing (the data has no test split)".to_string()
                    } else {
                        info.eval_names.join(", ")
                    }
                );
            }
        }
        for cb in self.callbacks.iter_mut() {
            cb.on_train_start(&info)?;
        }
        let (mut es_best, mut es_waited, mut stopped_early) = (None, 0usize, None);

        let mut status = Status::Completed;
        let mut step_ms = Vec::with_capacity(total.saturating_sub(step));
        let (mut last_train, mut last_eval) = (vec![], vec![]);
        let mut lr = spec.optim.lr;
        let batch = spec.batch.rows(train.n);
        // Window of steps since the last accuracy report (it may span epochs).
        let (mut win_carry, mut win_seen) = (0.0f64, 0usize);
        let mut win_base: f64;
        'epochs: while epoch < epochs && step < total {
            // Online data: this epoch's own fresh samples (epoch 0's are `data.train`).
            if let (Some(online), true) = (&self.data.online, epoch > 0) {
                let fresh = (online.0)(epoch);
                if fresh.n != self.data.train.n {
                    anyhow::bail!(
                        "online data gave {} samples for epoch {epoch}, expected {}",
                        fresh.n,
                        self.data.train.n
                    );
                }
                train = upload(&fresh, features, &ad);
            }
            // Order depends only on (seed, epoch), so a resumed run sees the same batches.
            let mut order: Vec<i64> = (0..train.n as i64).collect();
            if spec.batch != BatchSize::Full {
                let mut rng = StdRng::seed_from_u64(
                    spec.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (epoch as u64 + 1),
                );
                order.shuffle(&mut rng);
            }
            let (mut sum_loss, mut seen) = (0.0, 0usize);
            // Device-side correct count of this epoch, and where the last report read it.
            let mut correct_dev: Option<Tensor<1>> = None;
            win_base = 0.0;
            // A run resumed mid-epoch skips the batches it had trained (same order).
            for b in std::mem::take(&mut skip)..spe {
                if step >= total {
                    break;
                }
                if self.stop.load(Ordering::SeqCst) {
                    status = Status::Interrupted;
                    let at = Boundary {
                        epoch,
                        batch: b,
                        step,
                        model: &NetView(&model),
                        optim: &opt,
                    };
                    for cb in self.callbacks.iter_mut() {
                        cb.on_interrupt(&at)?;
                    }
                    break 'epochs;
                }
                let t0 = Instant::now();
                let lo = b * batch;
                let hi = ((b + 1) * batch).min(train.n);
                let (mut x, y, target) = if spec.batch == BatchSize::Full {
                    let x = train.x.clone();
                    let t = train.target(&x, None);
                    (x, train.y.clone(), t)
                } else {
                    let idx = Tensor::<1, Int>::from_data(
                        TensorData::new(order[lo..hi].to_vec(), [hi - lo]),
                        &ad,
                    );
                    let x = train.x.clone().select(0, idx.clone());
                    let t = train.target(&x, Some(&idx));
                    (x, train.y.clone().select(0, idx), t)
                };
                if let Some(adv) = spec.adv.as_ref().filter(|a| a.train) {
                    x = adversarial::perturb(&model, x, y.clone(), adv, spec.loss, task);
                }
                lr = spec.schedule.lr(spec.optim.lr, step, epoch, total);
                let out = model.forward(x.clone());
                // Reconstruction compares with the (perturbed) input itself.
                let target = if train.t.is_some() { target } else { x };
                let l = loss::loss(spec.loss, task, out.clone(), y.clone(), target);
                // Correct counts stay on the device and are read only when reported:
                // a host read per step is a sync per step (the classic `.item()` cost).
                if let Some(c) = loss::correct(task, out.detach(), y) {
                    correct_dev = Some(match correct_dev.take() {
                        Some(a) => a + c,
                        None => c,
                    });
                }
                let loss_v = l.clone().detach().into_scalar::<f64>();
                if !loss_v.is_finite() {
                    status = Status::Diverged { step, loss: loss_v };
                    break 'epochs;
                }
                let grads = GradientsParams::from_grads(l.backward(), &model);
                for cb in self.callbacks.iter_mut() {
                    cb.on_after_backward(step, &NetView(&model), &grads)?;
                }
                model = opt.step(lr, model, grads);
                let _ = ad.sync();
                step_ms.push(t0.elapsed().as_secs_f64() * 1e3);
                step += 1;
                let n = hi - lo;
                sum_loss += loss_v * n as f64;
                seen += n;
                win_seen += n;
                let acc = match &correct_dev {
                    Some(c) if step.is_multiple_of(spec.log_every.max(1)) => {
                        let t = c.clone().into_scalar::<f64>();
                        let a = (win_carry + t - win_base) / win_seen.max(1) as f64;
                        (win_base, win_carry, win_seen) = (t, 0.0, 0);
                        Some(a)
                    }
                    _ => None,
                };
                let s = StepInfo {
                    step,
                    epoch,
                    loss: loss_v,
                    acc,
                    lr,
                    model: &NetView(&model),
                };
                for cb in self.callbacks.iter_mut() {
                    cb.on_batch_end(&s)?;
                }
            }
            let sum_correct = correct_dev.map_or(0.0, |c| c.into_scalar::<f64>());
            win_carry += sum_correct - win_base;
            epoch += 1;
            let last = epoch >= epochs || step >= total;
            let train_loss = sum_loss / seen.max(1) as f64;
            let train_acc = task.has_labels().then(|| sum_correct / seen.max(1) as f64);
            last_train = vec![("train_loss".to_string(), train_loss)];
            if let Some(a) = train_acc {
                last_train.push(("train_acc".into(), a));
            }
            let mut eval = vec![];
            if last || epoch.is_multiple_of(spec.eval_every.max(1)) {
                eval = self.evaluate_all(&model, &test, &extra);
                if let Some(m) = &metrics {
                    eval.extend(m.measure(&NetView(&model)));
                }
                last_eval = eval.clone();
                if let Some(es) = &spec.early_stopping {
                    if let Some((_, v)) = eval.iter().find(|(n, _)| *n == es.monitor) {
                        stopped_early = es.check(*v, &mut es_best, &mut es_waited);
                    }
                }
            }
            // An early stop makes this epoch the last: checkpoints and logs end here.
            let last = last || stopped_early.is_some();
            let e = EpochInfo {
                epoch,
                step,
                lr,
                train_loss,
                train_acc,
                eval,
                last,
                model: &NetView(&model),
                optim: &opt,
            };
            for cb in self.callbacks.iter_mut() {
                cb.on_epoch_end(&e)?;
            }
            if stopped_early.is_some() {
                if epoch >= epochs || step >= total {
                    // It ended anyway: not early.
                    stopped_early = None;
                }
                break;
            }
        }
        let outcome = Outcome {
            status,
            steps: step,
            epochs: epoch,
            last_train,
            last_eval,
            step_ms,
            stopped_early: stopped_early.map(|why| format!("stopped early at step {step}: {why}")),
        };
        for cb in self.callbacks.iter_mut() {
            cb.on_train_end(&outcome, &NetView(&model))
                .context("finishing the run's outputs")?;
        }
        Ok((outcome, model))
    }
}

/// Area under the ROC curve of `positive` scores against `negative` ones: the probability
/// that a random positive scores higher than a random negative (ties count half).
pub fn auroc(negative: &[f32], positive: &[f32]) -> f64 {
    let mut all: Vec<(f32, bool)> = negative
        .iter()
        .map(|s| (*s, false))
        .chain(positive.iter().map(|s| (*s, true)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Mann-Whitney U from average ranks.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += all[i..=j].iter().filter(|x| x.1).count() as f64 * avg;
        i = j + 1;
    }
    let (np, nn) = (positive.len() as f64, negative.len() as f64);
    if np == 0.0 || nn == 0.0 {
        return f64::NAN;
    }
    (rank_sum - np * (np + 1.0) / 2.0) / (np * nn)
}

#[cfg(test)]
mod tests {
    #[test]
    fn auroc_counts_ordered_pairs() {
        assert_eq!(super::auroc(&[0.1, 0.2], &[0.3, 0.4]), 1.0);
        assert_eq!(super::auroc(&[0.3, 0.4], &[0.1, 0.2]), 0.0);
        assert_eq!(super::auroc(&[0.1, 0.3], &[0.2, 0.4]), 0.75);
        assert_eq!(super::auroc(&[0.5], &[0.5]), 0.5);
    }
}
