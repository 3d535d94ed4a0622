//! Training: losses, optimizers, LR schedules, adversarial attacks, and the `Trainer`
//! that runs epochs and calls `Callback`s (metrics, progress, checkpoints, tracking).

pub mod adversarial;
pub mod api;
pub mod batched;
pub mod callbacks;
pub mod loss;
pub mod member_optim;
pub mod optim;
pub mod trainer;

pub use trainer::{Outcome, Status, StepInfo, Trainer};

/// Mini-batch size, or the whole training set per step (full-batch gradient descent).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BatchSize {
    Full,
    N(usize),
}

impl BatchSize {
    /// Rows in one batch drawn from `n` samples.
    pub fn rows(self, n: usize) -> usize {
        match self {
            BatchSize::Full => n,
            BatchSize::N(b) => b.min(n),
        }
    }
}

/// Training loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LossKind {
    /// Softmax cross-entropy over class logits.
    CrossEntropy,
    /// log(1 + exp(-y f(x))) with labels read as -1/+1.
    Logistic,
    /// Mean squared error (against one-hot or -1/+1 targets, or the input for reconstruction).
    Mse,
    /// max(0, 1 - y f(x)) with labels read as -1/+1.
    Hinge,
}

#[derive(Clone, Debug)]
pub enum OptimKind {
    Sgd {
        momentum: f64,
        dampening: f64,
        nesterov: bool,
    },
    Adam {
        betas: (f64, f64),
        eps: f64,
    },
    AdamW {
        betas: (f64, f64),
        eps: f64,
    },
}

#[derive(Clone, Debug)]
pub struct OptimSpec {
    pub kind: OptimKind,
    pub lr: f64,
    pub weight_decay: f64,
}

#[derive(Clone, Debug)]
pub enum ScheduleKind {
    Constant,
    /// Multiply by `gamma` every `step_size` epochs (PyTorch's StepLR).
    Step {
        step_size: usize,
        gamma: f64,
    },
    /// Cosine from `lr` down to `min_lr` over the whole run (per step).
    Cosine {
        min_lr: f64,
    },
}

#[derive(Clone, Debug)]
pub struct ScheduleSpec {
    pub kind: ScheduleKind,
    /// Linear warm-up over the first steps: factor `min(1, step / warmup_steps)`, PyTorch's
    /// `LambdaLR(opt, lambda s: min(1, s / W))` (the first step has lr 0, as there).
    pub warmup_steps: usize,
}

impl ScheduleSpec {
    /// Learning rate for optimizer step `step` (0-based) in `epoch`, of `total` steps.
    pub fn lr(&self, base: f64, step: usize, epoch: usize, total: usize) -> f64 {
        let lr = match self.kind {
            ScheduleKind::Constant => base,
            ScheduleKind::Step { step_size, gamma } => {
                base * gamma.powi((epoch / step_size.max(1)) as i32)
            }
            ScheduleKind::Cosine { min_lr } => {
                let t = (step as f64 / total.max(1) as f64).min(1.0);
                min_lr + (base - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        };
        if self.warmup_steps > 0 {
            lr * (step as f64 / self.warmup_steps as f64).min(1.0)
        } else {
            lr
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Attack {
    Fgsm,
    Pgd,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Norm {
    L2,
    Linf,
}

/// Adversarial training: every training batch is replaced by its attacked version.
#[derive(Clone, Debug)]
pub struct AdvSpec {
    pub attack: Attack,
    pub norm: Norm,
    pub eps: f64,
    pub steps: usize,
    pub step_size: f64,
    /// PGD steps for robust evaluation on the test split (0 = no robust evaluation).
    pub eval_steps: usize,
    /// Attack the training batches (false: clean training, robust accuracy still measured).
    pub train: bool,
}

impl AdvSpec {
    /// The attack `robust_acc` is measured with: PGD in the same norm and radius, with
    /// `eval_steps` steps of 2.5·eps/`eval_steps` (Madry et al.'s rule), whichever attack
    /// (FGSM or PGD, and its own step size) the training uses.
    pub fn eval_attack(&self) -> AdvSpec {
        let steps = self.eval_steps.max(1);
        AdvSpec {
            attack: Attack::Pgd,
            steps,
            step_size: 2.5 * self.eps / steps as f64,
            ..self.clone()
        }
    }
}

/// Everything the trainer needs to know, as plain values.
#[derive(Clone, Debug)]
pub struct TrainSpec {
    pub seed: u64,
    pub epochs: usize,
    pub max_steps: Option<usize>,
    pub batch: BatchSize,
    pub loss: LossKind,
    pub optim: OptimSpec,
    pub schedule: ScheduleSpec,
    pub adv: Option<AdvSpec>,
    /// Evaluate on the test split every this many epochs (and always after the last).
    pub eval_every: usize,
    /// Write a training metrics row every this many steps.
    pub log_every: usize,
    /// When to save a checkpoint between the ones at the end and at an interruption.
    pub checkpoints: CheckpointPolicy,
    /// PyTorch weights to start from, and parameters not to train.
    pub weights: crate::model::weights::WeightsSpec,
    /// Parameters (names or globs, as `tracker.layers`) whose change from init and alignment
    /// with the data's ground truth are logged with every evaluation; empty = none.
    pub weight_metrics: Vec<String>,
    /// Stop before the last epoch on an evaluated metric (Lightning's `EarlyStopping`).
    pub early_stopping: Option<EarlyStopping>,
}

/// When to end a run early, checked after every evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct EarlyStopping {
    /// An evaluated metric (`test_acc`, `test_loss`, `align_...`).
    pub monitor: String,
    /// Whether larger values are better.
    pub maximize: bool,
    /// Stop as soon as the metric reaches this value (`stopping_threshold`).
    pub stop_at: Option<f64>,
    /// Stop after this many evaluations without an improvement of more than `min_delta`.
    pub patience: Option<usize>,
    pub min_delta: f64,
}

impl EarlyStopping {
    /// Whether `mode: auto` maximizes `monitor`: accuracies, AUROC, R² and alignments up,
    /// losses and errors down (`artifacts::metric::direction`).
    pub fn auto_maximize(monitor: &str) -> bool {
        crate::artifacts::metric::direction(monitor)
            == Some(crate::artifacts::metric::Direction::Max)
    }

    /// The reason to stop after this evaluation, if any; `best` and `waited` carry the
    /// patience count between evaluations.
    pub fn check(&self, value: f64, best: &mut Option<f64>, waited: &mut usize) -> Option<String> {
        let m = &self.monitor;
        if let Some(t) = self.stop_at {
            let reached = if self.maximize {
                value >= t
            } else {
                value <= t
            };
            if reached {
                return Some(format!(
                    "{m} = {value} reached early_stopping.stop_at = {t}"
                ));
            }
        }
        let improved = match *best {
            None => true,
            Some(b) if self.maximize => value > b + self.min_delta,
            Some(b) => value < b - self.min_delta,
        };
        if improved {
            *best = Some(value);
            *waited = 0;
        } else {
            *waited += 1;
        }
        match self.patience {
            Some(p) if *waited >= p => Some(format!(
                "{m} has not improved on {} for {p} evaluation(s) (early_stopping.patience)",
                best.unwrap_or(value)
            )),
            _ => None,
        }
    }
}

/// When a run saves checkpoints, besides at the end and when stopped at an epoch boundary.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CheckpointPolicy {
    /// Every N epochs (0: only at the end): `checkpoint_every=N`.
    Epochs(usize),
    /// At the first epoch end after this many seconds since the last save, and never before
    /// 50 times the last save's own duration has passed, so saving costs at most 2% of the
    /// run's time: `checkpoint_every_s` (the default, with `checkpoint_every: null`).
    Seconds(f64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        let c = ScheduleSpec {
            kind: ScheduleKind::Cosine { min_lr: 0.0 },
            warmup_steps: 0,
        };
        assert_eq!(c.lr(1.0, 0, 0, 100), 1.0);
        assert!((c.lr(1.0, 50, 0, 100) - 0.5).abs() < 1e-12);
        assert!(c.lr(1.0, 100, 0, 100).abs() < 1e-12);
        let s = ScheduleSpec {
            kind: ScheduleKind::Step {
                step_size: 2,
                gamma: 0.1,
            },
            warmup_steps: 10,
        };
        assert_eq!(s.lr(1.0, 0, 0, 100), 0.0);
        assert!((s.lr(1.0, 1, 0, 100) - 0.1).abs() < 1e-12);
        assert!((s.lr(1.0, 20, 3, 100) - 0.1).abs() < 1e-12);
        assert!((s.lr(1.0, 20, 4, 100) - 0.01).abs() < 1e-12);
    }
}
