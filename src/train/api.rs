//! The public trainer: `Trainer::new(model, optimizer).callback(..).fit(&data, epochs, val)`
//! over any [`Net`], and the built-in callbacks a CLI run uses, ready to add by hand.

use super::callbacks::{Checkpointer, MetricsWriter, Progress};
use super::trainer::{self, Callback, EpochInfo, ModelView, Outcome, StartInfo, StepInfo};
use super::{
    BatchSize, CheckpointPolicy, LossKind, OptimKind, OptimSpec, ScheduleKind, ScheduleSpec,
    TrainSpec,
};
use crate::data::{Dataset, Split};
use crate::model::Net;
use crate::track::feature_tracker::TrackOptions;
use crate::track::{RunFacts, Tracker};
use anyhow::Result;
use burn::optim::GradientsParams;
use burn::prelude::Device;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// The loss; `None` in [`Trainer::loss`] means the task's natural one (cross-entropy for
/// classes, logistic for binary labels, MSE for reconstruction).
pub type Loss = LossKind;

/// An optimizer with PyTorch's defaults and update rules (checked against PyTorch 2.9).
#[derive(Clone, Debug)]
pub struct Optimizer(OptimSpec);

impl Optimizer {
    /// Plain SGD.
    pub fn sgd(lr: f64) -> Optimizer {
        Optimizer(OptimSpec {
            kind: OptimKind::Sgd {
                momentum: 0.0,
                dampening: 0.0,
                nesterov: false,
            },
            lr,
            weight_decay: 0.0,
        })
    }
    /// Adam with betas (0.9, 0.999) and eps 1e-8.
    pub fn adam(lr: f64) -> Optimizer {
        Optimizer(OptimSpec {
            kind: OptimKind::Adam {
                betas: (0.9, 0.999),
                eps: 1e-8,
            },
            lr,
            weight_decay: 0.0,
        })
    }
    /// AdamW with betas (0.9, 0.999), eps 1e-8 and decoupled weight decay 0.01.
    pub fn adamw(lr: f64) -> Optimizer {
        Optimizer(OptimSpec {
            kind: OptimKind::AdamW {
                betas: (0.9, 0.999),
                eps: 1e-8,
            },
            lr,
            weight_decay: 0.01,
        })
    }
    /// SGD's momentum (and Nesterov's); ignored by Adam.
    pub fn momentum(mut self, momentum: f64, nesterov: bool) -> Optimizer {
        if let OptimKind::Sgd {
            momentum: m,
            nesterov: n,
            ..
        } = &mut self.0.kind
        {
            (*m, *n) = (momentum, nesterov);
        }
        self
    }
    /// L2 weight decay (AdamW: decoupled).
    pub fn weight_decay(mut self, wd: f64) -> Optimizer {
        self.0.weight_decay = wd;
        self
    }
}

/// A trained model and how training ended.
pub struct Fitted<M> {
    /// The weights after the last step.
    pub model: M,
    /// Status, steps, epochs, last metrics.
    pub outcome: Outcome,
}

/// Trains any [`Net`] with callbacks: the loop the CLI runs (mini-batch or full-batch steps,
/// warm-up and schedules, evaluation, NaN detection) without the CLI.
///
/// Build the model on `device.autodiff()` for the device you pass (default: the CPU).
pub struct Trainer<M: Net> {
    model: M,
    spec: TrainSpec,
    loss: Option<LossKind>,
    device: Device,
    callbacks: Vec<Box<dyn Callback>>,
}

impl<M: Net> Trainer<M> {
    /// A trainer for `model` with `optimizer`: batch size 64, seed 0, constant learning
    /// rate, evaluation every epoch, a training-metrics row every 10 steps.
    pub fn new(model: M, optimizer: Optimizer) -> Trainer<M> {
        Trainer {
            model,
            spec: TrainSpec {
                seed: 0,
                epochs: 1,
                max_steps: None,
                batch: BatchSize::N(64),
                loss: LossKind::CrossEntropy,
                optim: optimizer.0,
                schedule: ScheduleSpec {
                    kind: ScheduleKind::Constant,
                    warmup_steps: 0,
                },
                adv: None,
                eval_every: 1,
                log_every: 10,
                checkpoints: CheckpointPolicy::Epochs(0),
                weights: Default::default(),
                weight_metrics: vec![],
                early_stopping: None,
            },
            loss: None,
            device: Device::flex(),
            callbacks: vec![],
        }
    }
    /// Adds a callback (called in the order added).
    pub fn callback(mut self, cb: impl Callback + 'static) -> Trainer<M> {
        self.callbacks.push(Box::new(cb));
        self
    }
    /// Mini-batches of `n` samples, reshuffled every epoch from the seed.
    pub fn batch_size(mut self, n: usize) -> Trainer<M> {
        self.spec.batch = BatchSize::N(n.max(1));
        self
    }
    /// The whole training set per step (full-batch gradient descent).
    pub fn full_batch(mut self) -> Trainer<M> {
        self.spec.batch = BatchSize::Full;
        self
    }
    /// Seeds the batch order.
    pub fn seed(mut self, seed: u64) -> Trainer<M> {
        self.spec.seed = seed;
        self
    }
    /// The loss (default: the task's natural one).
    pub fn loss(mut self, loss: Loss) -> Trainer<M> {
        self.loss = Some(loss);
        self
    }
    /// The device training runs on (its autodiff twin); the model must live there.
    pub fn device(mut self, device: Device) -> Trainer<M> {
        self.device = device;
        self
    }
    /// Stop after this many optimizer steps.
    pub fn max_steps(mut self, steps: usize) -> Trainer<M> {
        self.spec.max_steps = Some(steps);
        self
    }
    /// Evaluate every `n` epochs (and after the last).
    pub fn eval_every(mut self, n: usize) -> Trainer<M> {
        self.spec.eval_every = n.max(1);
        self
    }
    /// Report the training loss and accuracy every `n` steps.
    pub fn log_every(mut self, n: usize) -> Trainer<M> {
        self.spec.log_every = n.max(1);
        self
    }
    /// Starts from the weights of a PyTorch state dict (`torch.save(model.state_dict(), p)`
    /// or `.safetensors`), matched by parameter name (`0.weight`); every parameter must be
    /// there with its shape, and nothing else, or `fit` says which are not.
    pub fn init_from(mut self, state_dict: impl Into<std::path::PathBuf>) -> Trainer<M> {
        self.spec.weights.init_from = Some(state_dict.into());
        self
    }
    /// Does not train the parameters these names or globs match (`0.*`, `encoder.*.weight`):
    /// they get no gradient and no optimizer state.
    pub fn freeze<S: Into<String>>(mut self, globs: impl IntoIterator<Item = S>) -> Trainer<M> {
        self.spec.weights.freeze = globs.into_iter().map(Into::into).collect();
        self
    }
    /// Ends training after the first evaluation at which `metric` reaches `value`
    /// (Lightning's `EarlyStopping(monitor, stopping_threshold=value)`; the direction is the
    /// metric's: accuracies up, losses down). `Fitted::outcome.stopped_early` says why.
    pub fn stop_at(mut self, metric: &str, value: f64) -> Trainer<M> {
        let es = self.early(metric);
        es.stop_at = Some(value);
        self
    }
    /// Ends training after `evaluations` evaluations in a row without `metric` improving
    /// by more than `min_delta` (Lightning's `patience`).
    pub fn patience(mut self, metric: &str, evaluations: usize, min_delta: f64) -> Trainer<M> {
        let es = self.early(metric);
        es.patience = Some(evaluations.max(1));
        es.min_delta = min_delta;
        self
    }
    fn early(&mut self, metric: &str) -> &mut super::EarlyStopping {
        let es = self
            .spec
            .early_stopping
            .get_or_insert(super::EarlyStopping {
                monitor: metric.to_string(),
                maximize: false,
                stop_at: None,
                patience: None,
                min_delta: 0.0,
            });
        es.monitor = metric.to_string();
        es.maximize = super::EarlyStopping::auto_maximize(metric);
        es
    }
    /// Logs each chosen parameter's change from init and its rows' alignment with the
    /// data's ground-truth features with every evaluation (`change_<p>`, `align_<p>_<f>`,
    /// `align_weighted_<p>_<f>`, as `tracker.metrics=true`); names or globs.
    pub fn weight_metrics<S: Into<String>>(
        mut self,
        params: impl IntoIterator<Item = S>,
    ) -> Trainer<M> {
        self.spec.weight_metrics = params.into_iter().map(Into::into).collect();
        self
    }
    /// Cosine decay to `min_lr` over the run, after `warmup_steps` of linear warm-up.
    pub fn cosine(mut self, min_lr: f64, warmup_steps: usize) -> Trainer<M> {
        self.spec.schedule = ScheduleSpec {
            kind: ScheduleKind::Cosine { min_lr },
            warmup_steps,
        };
        self
    }

    /// Trains on `train.train` for `epochs` epochs, evaluating on `val` (else on
    /// `train.test`; neither: no evaluation). Errors from callbacks stop training.
    pub fn fit(mut self, train: &Dataset, epochs: usize, val: Option<&Split>) -> Result<Fitted<M>> {
        let mut data = train.clone();
        if let Some(v) = val {
            data.test = v.clone();
        }
        data.validate(&format!("Trainer::fit data '{}'", data.name))?;
        self.spec.epochs = epochs;
        self.spec.loss = super::loss::resolve(self.loss, data.task)?;
        let (outcome, model) = trainer::Trainer {
            spec: &self.spec,
            data: &data,
            device: self.device,
            callbacks: self.callbacks,
            stop: Arc::new(AtomicBool::new(false)),
            resume: None,
        }
        .fit(self.model)?;
        Ok(Fitted { model, outcome })
    }
}

/// `metrics.jsonl` and `metrics.csv` in a directory, as a CLI run writes them (`ezflt plot`
/// draws their curves).
pub struct MetricsFiles(MetricsWriter);

impl MetricsFiles {
    /// Writes into `dir` (created if missing), a training row every `log_every` steps.
    pub fn new(dir: impl AsRef<Path>, log_every: usize) -> Result<MetricsFiles> {
        std::fs::create_dir_all(dir.as_ref())?;
        Ok(MetricsFiles(MetricsWriter::new(
            dir.as_ref(),
            log_every,
            0.0,
        )))
    }
}

/// A progress bar on stderr (a plain line per epoch when stderr is not a terminal).
pub struct ProgressBar(Progress);

impl ProgressBar {
    /// Progress on stderr; `quiet` prints nothing.
    pub fn new(quiet: bool) -> ProgressBar {
        ProgressBar(Progress::new(None, quiet))
    }
}

impl Default for ProgressBar {
    fn default() -> ProgressBar {
        ProgressBar::new(false)
    }
}

/// `checkpoint/` in a directory: model weights, optimizer state and counters, written
/// atomically at the end (and every `every_epochs` epochs when non-zero).
pub struct Checkpoints(Checkpointer);

impl Checkpoints {
    /// Checkpoints into `dir/checkpoint`.
    pub fn new(dir: impl AsRef<Path>, every_epochs: usize) -> Result<Checkpoints> {
        std::fs::create_dir_all(dir.as_ref())?;
        Ok(Checkpoints(Checkpointer::new(
            dir.as_ref(),
            CheckpointPolicy::Epochs(every_epochs),
        )))
    }
}

/// The feature tracker as a [`Trainer`] callback: `features.npz` in a directory, aligned
/// with the ground truth the options give.
pub struct FeatureTracking {
    inner: Tracker,
}

impl FeatureTracking {
    /// Tracks into `dir` (created if missing).
    pub fn new(dir: impl AsRef<Path>, options: TrackOptions) -> Result<FeatureTracking> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)?;
        let (spec, truth) = options.into_spec();
        Ok(FeatureTracking {
            inner: Tracker::new(spec, dir, truth, RunFacts::default()),
        })
    }
}

/// W&B logging as a callback: `train/loss`, `train/acc`, `lr`, `epoch` every `log_every`
/// steps and the evaluation per epoch, into the SDK's `.wandb` journal under `dir/wandb/`,
/// streamed to the server when online. Settings come from the `WANDB_*` environment
/// (`WANDB_MODE`, `WANDB_BASE_URL`, `WANDB_API_KEY` or `~/.netrc`, `WANDB_ENTITY`, ...).
#[cfg(feature = "wandb")]
pub struct Wandb {
    settings: crate::wandb::settings::Settings,
    dir: PathBuf,
    config: serde_json::Value,
    log_every: usize,
    logger: Option<Arc<crate::wandb::Logger>>,
    inner: Option<crate::wandb::callback::WandbCallback>,
    run_id: Arc<std::sync::Mutex<Option<String>>>,
}

#[cfg(feature = "wandb")]
impl Wandb {
    /// Logs to `project`, journalling under `dir`.
    pub fn new(project: &str, dir: impl AsRef<Path>) -> Result<Wandb> {
        let from = crate::wandb::settings::FromConfig {
            project: Some(project.to_string()),
            ..Default::default()
        };
        let settings = crate::wandb::settings::resolve(&from, &|k| std::env::var(k).ok())?;
        std::fs::create_dir_all(dir.as_ref())?;
        Ok(Wandb {
            settings,
            dir: dir.as_ref().to_path_buf(),
            config: serde_json::json!({}),
            log_every: 10,
            logger: None,
            inner: None,
            run_id: Arc::default(),
        })
    }
    /// Journal only, whatever `WANDB_MODE` says; `ezflt sync <dir>` uploads it later.
    pub fn offline(mut self) -> Wandb {
        self.settings.mode = crate::wandb::settings::Mode::Offline;
        self
    }
    /// The run's config as W&B shows it.
    pub fn config(mut self, config: serde_json::Value) -> Wandb {
        self.config = config;
        self
    }
    /// A training row every `n` steps.
    pub fn log_every(mut self, n: usize) -> Wandb {
        self.log_every = n.max(1);
        self
    }
    /// A handle that holds the W&B run id once training has started.
    pub fn run_id(&self) -> Arc<std::sync::Mutex<Option<String>>> {
        self.run_id.clone()
    }
}

#[cfg(feature = "wandb")]
impl Callback for Wandb {
    fn on_train_start(&mut self, info: &StartInfo) -> Result<()> {
        let logger = crate::wandb::Logger::start(
            &self.settings,
            &self.config,
            &self.dir,
            &crate::wandb::identity(&self.dir),
            0.0,
            None,
            Arc::new(AtomicBool::new(false)),
        )?;
        let Some(logger) = logger.map(Arc::new) else {
            return Ok(());
        };
        if let Ok(mut id) = self.run_id.lock() {
            *id = Some(logger.run_id().to_string());
        }
        let mut cb = crate::wandb::callback::WandbCallback::new(logger.clone(), self.log_every);
        cb.on_train_start(info)?;
        self.inner = Some(cb);
        self.logger = Some(logger);
        Ok(())
    }
    fn on_batch_end(&mut self, s: &StepInfo) -> Result<()> {
        match &mut self.inner {
            Some(cb) => cb.on_batch_end(s),
            None => Ok(()),
        }
    }
    fn on_epoch_end(&mut self, e: &EpochInfo) -> Result<()> {
        match &mut self.inner {
            Some(cb) => cb.on_epoch_end(e),
            None => Ok(()),
        }
    }
    fn on_train_end(&mut self, o: &Outcome, model: &dyn ModelView) -> Result<()> {
        if let Some(cb) = &mut self.inner {
            cb.on_train_end(o, model)?;
        }
        if let Some(l) = self.logger.take() {
            let code = match o.status {
                trainer::Status::Completed => 0,
                trainer::Status::Interrupted => 130,
                trainer::Status::Diverged { .. } => 1,
            };
            l.finish(code, &[], &[]);
        }
        Ok(())
    }
}

/// Forwards every hook to the wrapped built-in callback.
macro_rules! forward {
    ($t:ty, $field:tt) => {
        impl Callback for $t {
            fn on_train_start(&mut self, i: &StartInfo) -> Result<()> {
                self.$field.on_train_start(i)
            }
            fn on_after_backward(
                &mut self,
                step: usize,
                model: &dyn ModelView,
                grads: &GradientsParams,
            ) -> Result<()> {
                self.$field.on_after_backward(step, model, grads)
            }
            fn on_batch_end(&mut self, s: &StepInfo) -> Result<()> {
                self.$field.on_batch_end(s)
            }
            fn on_epoch_end(&mut self, e: &EpochInfo) -> Result<()> {
                self.$field.on_epoch_end(e)
            }
            fn on_interrupt(&mut self, at: &trainer::Boundary) -> Result<()> {
                self.$field.on_interrupt(at)
            }
            fn on_train_end(&mut self, o: &Outcome, model: &dyn ModelView) -> Result<()> {
                self.$field.on_train_end(o, model)
            }
        }
    };
}

forward!(MetricsFiles, 0);
forward!(ProgressBar, 0);
forward!(Checkpoints, 0);
forward!(FeatureTracking, inner);
