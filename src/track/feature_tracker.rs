//! The tracker for a hand-written training loop: `start`, then `on_epoch_start` /
//! `on_batch_end` (and `on_after_backward` for gradients), then `finish` writes `features.npz`.

use super::schedule::Schedule;
use super::{RunFacts, TrackSpec, Tracker};
use crate::artifacts::archive::{Archive, Feature};
use crate::data::GroundTruth;
use crate::train::trainer::{Callback, Outcome, StartInfo, Status};
use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::optim::GradientsParams;
use std::path::{Path, PathBuf};

/// What a tracker records: which parameters, when, and what with.
#[derive(Clone, Debug)]
pub struct TrackOptions {
    layers: Vec<String>,
    gradients: bool,
    schedule: Schedule,
    f16: bool,
    max_bytes: u64,
    ground_truth: Vec<GroundTruth>,
}

impl Default for TrackOptions {
    /// The first weight matrix, weights only, every step, f32, at most 2 GB.
    fn default() -> TrackOptions {
        TrackOptions {
            layers: vec!["auto".into()],
            gradients: false,
            schedule: Schedule::Every(1),
            f16: false,
            max_bytes: 2_000_000_000,
            ground_truth: vec![],
        }
    }
}

impl TrackOptions {
    /// Parameters by module path or glob (`layers.0.weight`, `layers.*.weight`); `["auto"]`
    /// is the first weight matrix, an empty list every parameter.
    pub fn layers<S: AsRef<str>>(mut self, layers: impl IntoIterator<Item = S>) -> Self {
        self.layers = layers.into_iter().map(|s| s.as_ref().to_string()).collect();
        self
    }
    /// Record gradients too (at the same steps, before each update).
    pub fn gradients(mut self, on: bool) -> Self {
        self.gradients = on;
        self
    }
    /// When to snapshot; step 0 and the final step are always recorded.
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }
    /// Store snapshots as float16 (half the disk).
    pub fn f16(mut self, on: bool) -> Self {
        self.f16 = on;
        self
    }
    /// Stop taking snapshots past this many bytes (the final step is still recorded).
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }
    /// The tracker's plain spec and the ground truth.
    pub(crate) fn into_spec(self) -> (TrackSpec, Vec<GroundTruth>) {
        let spec = TrackSpec {
            layers: self.layers,
            weights: true,
            gradients: self.gradients,
            schedule: self.schedule,
            alignment: !self.ground_truth.is_empty(),
            f16: self.f16,
            max_bytes: self.max_bytes,
            activations: vec![],
            probe_size: 0,
            metrics: false,
        };
        (spec, self.ground_truth)
    }

    /// Ground-truth features: every tracked weight whose rows have the same length is
    /// aligned with them (cosines per snapshot, `Archive::alignment`).
    pub fn ground_truth(mut self, g: GroundTruth) -> Self {
        self.ground_truth.push(g);
        self
    }
}

/// Records chosen parameters of any burn module while you train it your way, into the same
/// `features.npz` a CLI run writes (so `ezflt plot <dir>` and [`crate::plots`] draw it).
///
/// Step 0 (the initialisation) is recorded by `start`, then every step the schedule picks
/// at `on_batch_end`, and the last step at `finish`.
pub struct FeatureTracker {
    inner: Tracker,
    dir: PathBuf,
    epoch: usize,
    step: usize,
    started: bool,
    finished: bool,
}

impl FeatureTracker {
    /// A tracker writing into `dir` (created if missing).
    pub fn new(dir: impl AsRef<Path>, options: TrackOptions) -> Result<FeatureTracker> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let (spec, truth) = options.into_spec();
        Ok(FeatureTracker {
            inner: Tracker::new(spec, &dir, truth, RunFacts::default()),
            dir,
            epoch: 0,
            step: 0,
            started: false,
            finished: false,
        })
    }

    /// Call once before training: checks the layers exist, plans the schedule over
    /// `epochs` x `steps_per_epoch` steps, and records the initial weights (step 0).
    pub fn start<M: Module + Clone>(
        &mut self,
        model: &M,
        epochs: usize,
        steps_per_epoch: usize,
    ) -> Result<()> {
        if self.started {
            bail!("FeatureTracker::start was already called");
        }
        let name = std::any::type_name::<M>();
        self.inner.facts.model = name.rsplit("::").next().unwrap_or(name).to_string();
        let info = StartInfo {
            epochs,
            total_steps: epochs * steps_per_epoch,
            steps_per_epoch,
            start_epoch: 0,
            start_step: 0,
            eval_names: vec![],
            params: crate::model::param_names(model),
            num_params: model.num_params(),
            model,
            frozen: 0,
            init_from: None,
        };
        self.inner.on_train_start(&info)?;
        self.started = true;
        Ok(())
    }

    /// Marks the start of epoch `epoch` (0-based).
    pub fn on_epoch_start(&mut self, epoch: usize) {
        self.epoch = epoch;
    }

    /// After backward, before the update: records the gradients when tracked and scheduled.
    pub fn on_after_backward<M: Module + Clone>(
        &mut self,
        model: &M,
        grads: &GradientsParams,
    ) -> Result<()> {
        self.check_started()?;
        self.inner.on_after_backward(self.step, model, grads)
    }

    /// After the update of batch `batch_idx` (0-based within the epoch): one more step, whose
    /// weights are recorded when the schedule picks it.
    pub fn on_batch_end<M: Module + Clone>(&mut self, model: &M, batch_idx: usize) -> Result<()> {
        self.check_started()?;
        self.step += 1;
        self.inner.at = Some((self.epoch as i64, batch_idx as i64));
        if self.inner.steps.contains(self.step) {
            self.inner.record(self.step, model)?;
        }
        Ok(())
    }

    /// Records the final weights and writes `features.npz`; returns its path.
    pub fn finish<M: Module + Clone>(&mut self, model: &M) -> Result<PathBuf> {
        self.check_started()?;
        if !self.finished {
            let outcome = Outcome {
                status: Status::Completed,
                steps: self.step,
                epochs: self.epoch + 1,
                last_train: vec![],
                last_eval: vec![],
                step_ms: vec![],
                stopped_early: None,
            };
            self.inner.on_train_end(&outcome, model)?;
            self.finished = true;
        }
        Ok(self.dir.join(super::spill::ARCHIVE))
    }

    /// Steps taken so far.
    pub fn step(&self) -> usize {
        self.step
    }

    /// One tracked parameter's snapshots, read back from the archive `finish` wrote.
    pub fn get_feature(&self, name: &str) -> Result<Feature> {
        if !self.finished {
            bail!("call FeatureTracker::finish before reading features back");
        }
        Archive::open(&self.dir)?.feature(name)
    }

    fn check_started(&self) -> Result<()> {
        if !self.started {
            bail!("call FeatureTracker::start(&model, epochs, steps_per_epoch) before training");
        }
        if self.finished {
            bail!("this FeatureTracker has finished; make a new one for another run");
        }
        Ok(())
    }
}
