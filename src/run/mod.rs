//! One run, start to finish: resolved job config -> specs -> device -> data -> model ->
//! trainer with callbacks -> `summary.json`. The launcher calls this once per job.

pub mod batch;
mod logging;
pub mod preflight;
pub mod settings;
pub mod specs;
pub(crate) mod typed;

use crate::artifacts::run::{GroundTruthShape, RunStatus, Summary};
use crate::backend;
use crate::config::Node;
use crate::data;
use crate::model::{ModelIo, Net, WithNet};
use crate::train::callbacks::{checkpoint, Checkpointer, MetricsWriter, Progress};
use crate::train::trainer::{Callback, EpochInfo, ResumePoint};
use crate::train::{loss, Status, Trainer};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Set by Ctrl-C (or SIGTERM/SIGHUP, e.g. a scheduler's time limit); the trainer stops at the
/// next batch boundary, a safe point, and the run is marked interrupted. The handler only sets
/// the flag: `timeout` and terminals signal a whole process group, so one stop request often
/// arrives twice, and a repeat within a few seconds is the same request. A repeat after that
/// is the user insisting: quit now (files are written to temp names and renamed, so at worst
/// a stray temp file is left, cleaned by the next start).
pub(crate) fn stop_flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let f = Arc::new(AtomicBool::new(false));
        let g = f.clone();
        let first = OnceLock::<Instant>::new();
        // If a handler is already installed (embedding), training just can't be interrupted softly.
        let _ = ctrlc::set_handler(move || {
            let at = *first.get_or_init(Instant::now);
            if !g.swap(true, Ordering::SeqCst) {
                errln!("\nInterrupted: stopping after this batch (Ctrl-C again to quit now)");
            } else if at.elapsed().as_secs_f64() > 2.0 {
                std::process::exit(130);
            }
        });
        f
    })
    .clone()
}

/// How a run ended: its summary, as written to `summary.json`.
pub struct RunResult {
    pub summary: Summary,
}

impl RunResult {
    pub fn status(&self) -> RunStatus {
        self.summary.status
    }
    pub fn exit_code(&self) -> i32 {
        self.summary.status.exit_code()
    }
}

/// Collects what the summary reports: parameter shapes, best metrics (each in its direction).
#[derive(Default)]
struct Best {
    values: serde_json::Map<String, serde_json::Value>,
    params: serde_json::Map<String, serde_json::Value>,
    params_total: usize,
}

impl Callback for Best {
    fn on_train_start(&mut self, info: &crate::train::trainer::StartInfo) -> Result<()> {
        for (name, shape) in &info.params {
            self.params.insert(name.clone(), serde_json::json!(shape));
        }
        self.params_total = info.num_params;
        Ok(())
    }

    fn on_epoch_end(&mut self, e: &EpochInfo) -> Result<()> {
        let mut items = vec![("train_loss".to_string(), e.train_loss)];
        if let Some(a) = e.train_acc {
            items.push(("train_acc".into(), a));
        }
        items.extend(e.eval.iter().cloned());
        for (k, v) in items {
            if !v.is_finite() {
                continue;
            }
            use crate::artifacts::metric;
            let better = match self.values.get(&k).and_then(|x| x.as_f64()) {
                None => metric::direction(&k).is_some(),
                Some(old) => metric::better(&k, v, old),
            };
            if better {
                self.values.insert(k, serde_json::json!(v));
            }
        }
        Ok(())
    }
}

/// What training one job needs besides the model: `PreparedModel::train` builds the model
/// and hands it to `run`, typed.
pub(crate) struct Job<'a> {
    tracker: Option<crate::track::Tracker>,
    train: crate::train::TrainSpec,
    data: &'a data::Dataset,
    device: burn::prelude::Device,
    dir: &'a Path,
    log: Option<PathBuf>,
    quiet: bool,
    resume: Option<ResumePoint>,
    time_offset: f64,
    best: &'a mut Best,
    wandb: Option<logging::Handle>,
}

/// The callbacks every run gets, in this order: metrics, progress, checkpoints, the summary's
/// best values, W&B, the library's registered callbacks, then the tracker.
fn run_callbacks<'a>(
    dir: &Path,
    train: &crate::train::TrainSpec,
    time_offset: f64,
    progress: Progress,
    best: &'a mut Best,
    tracker: Option<crate::track::Tracker>,
    wandb: Option<&logging::Handle>,
) -> Vec<Box<dyn Callback + 'a>> {
    let mut callbacks: Vec<Box<dyn Callback + 'a>> = vec![
        Box::new(MetricsWriter::new(dir, train.log_every, time_offset)),
        Box::new(progress),
        Box::new(Checkpointer::new(dir, train.checkpoints)),
        Box::new(best),
    ];
    let mut tracker = tracker;
    if let Some(w) = wandb {
        callbacks.push(logging::callback(w, train.log_every, tracker.as_mut()));
    }
    callbacks.extend(crate::app::registry().callbacks(dir));
    if let Some(t) = tracker {
        callbacks.push(Box::new(t));
    }
    callbacks
}

impl WithNet for Job<'_> {
    type Out = Result<crate::train::Outcome>;
    fn run<M: Net>(self, model: M) -> Self::Out {
        let callbacks = run_callbacks(
            self.dir,
            &self.train,
            self.time_offset,
            Progress::new(self.log.as_deref(), self.quiet),
            self.best,
            self.tracker,
            self.wandb.as_ref(),
        );
        Trainer {
            spec: &self.train,
            data: self.data,
            device: self.device,
            callbacks,
            stop: stop_flag(),
            resume: self.resume,
        }
        .run(model)
    }
}

impl<T: Callback + ?Sized> Callback for &mut T {
    fn on_train_start(&mut self, i: &crate::train::trainer::StartInfo) -> Result<()> {
        (**self).on_train_start(i)
    }
    fn on_batch_end(&mut self, s: &crate::train::StepInfo) -> Result<()> {
        (**self).on_batch_end(s)
    }
    fn on_epoch_end(&mut self, e: &EpochInfo) -> Result<()> {
        (**self).on_epoch_end(e)
    }
    fn on_after_backward(
        &mut self,
        step: usize,
        model: &dyn crate::train::trainer::ModelView,
        grads: &burn::optim::GradientsParams,
    ) -> Result<()> {
        (**self).on_after_backward(step, model, grads)
    }
    fn on_interrupt(&mut self, at: &crate::train::trainer::Boundary) -> Result<()> {
        (**self).on_interrupt(at)
    }
    fn on_train_end(
        &mut self,
        o: &crate::train::Outcome,
        model: &dyn crate::train::trainer::ModelView,
    ) -> Result<()> {
        (**self).on_train_end(o, model)
    }
}

/// Where a run directory's last checkpoint says to continue, if it has one.
pub fn resume_point(dir: &Path) -> Result<ResumePoint> {
    let ck = dir.join("checkpoint");
    checkpoint::recover(&ck)?;
    let state_path = ck.join(checkpoint::STATE);
    let text = std::fs::read_to_string(&state_path).with_context(|| {
        format!(
            "resume: no checkpoint in {} (expected {}); the run saved none, so it cannot be resumed",
            dir.display(),
            state_path.display()
        )
    })?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("resume: {} is not valid JSON", state_path.display()))?;
    let get = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_u64())
            .map(|x| x as usize)
            .with_context(|| format!("resume: {} has no '{k}'", state_path.display()))
    };
    Ok(ResumePoint {
        model: ck.join(checkpoint::MODEL),
        optim: ck.join(checkpoint::OPTIM),
        epoch: get("epoch")?,
        // Older checkpoints were only ever taken at epoch ends.
        batch: get("batch").unwrap_or(0),
        step: get("step")?,
        streams: v
            .get("streams")
            .and_then(|s| s.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_u64()).collect())
            .unwrap_or_default(),
    })
}

/// Trains one job whose resolved config is `job` into `dir`. Writes `summary.json`
/// however training ends; errors in the config are returned before anything trains, and
/// every error is also appended to the job's log file. `checked`: the job's preflight, when
/// the caller ran it already (its data is then used, not loaded again).
pub fn run(
    job: &Node,
    dir: &Path,
    log: Option<PathBuf>,
    quiet: bool,
    resume: Option<ResumePoint>,
    checked: Option<preflight::Checked>,
) -> Result<RunResult> {
    let result = execute(job, dir, log.clone(), quiet, resume, checked);
    if let (Err(e), Some(l)) = (&result, &log) {
        log_error(l, e);
    }
    result
}

/// Appends a run's error to its log file, with the time.
fn log_error(log: &Path, e: &anyhow::Error) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)
    {
        let _ = writeln!(
            f,
            "[{}] error: {e:#}",
            chrono::Local::now().format("%Y-%m-%d %H:%M:%S")
        );
    }
}

fn execute(
    job: &Node,
    dir: &Path,
    log: Option<PathBuf>,
    quiet: bool,
    resume: Option<ResumePoint>,
    checked: Option<preflight::Checked>,
) -> Result<RunResult> {
    let checked = match checked {
        Some(c) => c,
        None => preflight::check(job)?,
    };
    Prepared::new(job, dir, log, resume.is_some(), checked, None)?.train_alone(quiet, resume)
}

/// The backend a job (or a batch of `members` such jobs) runs on, configured for its dtype.
fn choose_backend(
    spec: &specs::RunSpec,
    ds: &data::Dataset,
    params: usize,
    members: usize,
) -> Result<backend::Chosen> {
    let work = (spec.train.batch.rows(ds.train.n) as u64)
        .saturating_mul(params as u64)
        .saturating_mul(members as u64);
    let mut chosen = backend::choose(&spec.backend, &spec.device, spec.threads, work)?;
    // Before any tensor exists on the device: parameters, data and every op become f64 (a
    // worker that runs several jobs alone configures it once).
    if spec.f64 && chosen.device.settings().float_dtype != burn::tensor::FloatDType::F64 {
        chosen
            .device
            .configure(burn::tensor::FloatDType::F64)
            .map_err(|e| anyhow::anyhow!("dtype=f64 on {}: {e:?}", chosen.name))?;
        // burn materializes a resumed optimizer state on the default device (LibTorch's CPU
        // in a tch build) in that device's float dtype before moving it to the parameters':
        // it has to be float64 there too.
        let mut default = burn::tensor::Device::default();
        if default != chosen.device
            && default.settings().float_dtype != burn::tensor::FloatDType::F64
        {
            default
                .configure(burn::tensor::FloatDType::F64)
                .map_err(|e| anyhow::anyhow!("dtype=f64 on the default device: {e:?}"))?;
        }
    }
    Ok(chosen)
}

/// A job ready to train: its settings, data, backend, tracker and W&B run; `finish` writes
/// its summary and figures from the training's outcome.
pub(crate) struct Prepared {
    dir: PathBuf,
    log: Option<PathBuf>,
    spec: specs::RunSpec,
    ds: data::Dataset,
    chosen: backend::Chosen,
    train: crate::train::TrainSpec,
    time_offset: f64,
    started: Instant,
    started_at: chrono::DateTime<chrono::Local>,
    best: Best,
    tracker: Option<crate::track::Tracker>,
    wandb: Option<logging::Handle>,
}

impl Prepared {
    fn new(
        job: &Node,
        dir: &Path,
        log: Option<PathBuf>,
        resumed: bool,
        checked: preflight::Checked,
        shared: Option<&backend::Chosen>,
    ) -> Result<Prepared> {
        let preflight::Checked {
            spec, data, params, ..
        } = checked;
        let ds = match data {
            Some(d) => d,
            None => spec.data.load(spec.data_seed)?,
        };
        // A batch's members share one device, chosen for the whole batch's work.
        let chosen = match shared {
            Some(c) => c.clone(),
            None => choose_backend(&spec, &ds, params, 1)?,
        };
        // `features.npz.tmp`, `summary.json.tmp`: what a killed process was writing.
        crate::plan::rundir::clean_temps(dir);
        let mut train = spec.train.clone();
        train.loss = loss::resolve(spec.loss, ds.task)?;
        let previous = Summary::read(dir).filter(|_| resumed);
        let time_offset = previous.as_ref().map_or(0.0, |p| p.duration_s);
        let started = Instant::now();
        let started_at = chrono::Local::now();
        let tracker = spec.track.clone().map(|t| {
            let probe = (!t.activations.is_empty()).then(|| probe(&ds, t.probe_size, spec.seed));
            let tracker = crate::track::Tracker::new(
                t,
                dir,
                ds.features.clone(),
                crate::track::RunFacts {
                    config_hash: crate::track::config_hash(&crate::config::yaml::dump(job)),
                    model: spec.model.name().to_string(),
                    data: ds.name.clone(),
                },
            );
            match probe {
                Some(p) => tracker.with_probe(p),
                None => tracker,
            }
        });
        let wandb = logging::start(
            &spec,
            job,
            dir,
            time_offset,
            previous
                .as_ref()
                .and_then(|p| p.wandb.as_ref())
                .map(|w| w.log.as_path()),
        )?;
        Ok(Prepared {
            dir: dir.to_path_buf(),
            log,
            spec,
            ds,
            chosen,
            train,
            time_offset,
            started,
            started_at,
            best: Best::default(),
            tracker,
            wandb,
        })
    }

    /// Trains this job on its own (from `resume` when given) and finishes it.
    fn train_alone(mut self, quiet: bool, resume: Option<ResumePoint>) -> Result<RunResult> {
        let io = self.io();
        // Seeded here, just before the model draws its weights: a batch worker prepares
        // all its jobs before training any one alone.
        self.chosen.device.seed(self.spec.seed);
        let ad = self.chosen.device.clone().autodiff();
        let job_run = Job {
            tracker: self.tracker.take(),
            train: self.train.clone(),
            data: &self.ds,
            device: self.chosen.device.clone(),
            dir: &self.dir,
            log: self.log.clone(),
            quiet,
            resume,
            time_offset: self.time_offset,
            best: &mut self.best,
            wandb: self.wandb.as_ref().cloned(),
        };
        let outcome = self.spec.model.train(&io, &ad, job_run);
        self.finish(outcome)
    }

    fn io(&self) -> ModelIo {
        ModelIo {
            sample_shape: self.ds.sample_shape.clone(),
            task: self.ds.task,
        }
    }

    /// Writes `summary.json` (and the figures, and ends the W&B run) from how training ended.
    fn finish(self, outcome: Result<crate::train::Outcome>) -> Result<RunResult> {
        self.finish_with(outcome, None)
    }

    fn finish_with(
        self,
        outcome: Result<crate::train::Outcome>,
        batched: Option<crate::artifacts::run::Batched>,
    ) -> Result<RunResult> {
        let Prepared {
            dir,
            spec,
            ds,
            chosen,
            train,
            time_offset,
            started,
            started_at,
            best,
            wandb,
            ..
        } = self;
        let dir = dir.as_path();
        let mut summary = Summary {
            backend: chosen.backend.to_string(),
            device: chosen.name.clone(),
            dtype: if spec.f64 { "f64" } else { "f32" }.to_string(),
            threads: chosen.threads,
            seed: spec.seed,
            model: spec.model.name().to_string(),
            data: ds.name.clone(),
            loss: loss::name(train.loss).to_string(),
            started_at: started_at.to_rfc3339(),
            finished_at: chrono::Local::now().to_rfc3339(),
            duration_s: time_offset + started.elapsed().as_secs_f64(),
            sample_shape: ds.sample_shape.clone(),
            batched,
            ..Summary::default()
        };
        let result = match outcome {
            Err(e) => {
                summary.status = RunStatus::Failed;
                summary.error = Some(format!("{e:#}"));
                if let Some(w) = &wandb {
                    summary.wandb = Some(logging::finish(w, 1, &Default::default(), &[]));
                }
                summary.write(dir)?;
                return Err(e);
            }
            Ok(o) => o,
        };
        summary.status = match result.status {
            Status::Completed => RunStatus::Completed,
            Status::Diverged { .. } => RunStatus::Diverged,
            Status::Interrupted => RunStatus::Interrupted,
        };
        summary.steps = result.steps;
        summary.epochs = result.epochs;
        summary.stopped_early = result.stopped_early.clone();
        for (k, v) in result.last_train.iter().chain(&result.last_eval) {
            summary.last.insert(k.clone(), serde_json::json!(v));
        }
        summary.best = best.values;
        summary.num_params = best.params_total;
        summary.params = best.params;
        summary.ground_truth = ds
            .features
            .iter()
            .map(|f| GroundTruthShape {
                name: f.name.clone(),
                shape: vec![f.rows, f.dim],
            })
            .collect();
        if !result.step_ms.is_empty() {
            let mut ms = result.step_ms.clone();
            ms.sort_by(|a, b| a.total_cmp(b));
            summary.step_ms_median = Some(ms[ms.len() / 2]);
        }
        if let Status::Diverged { step, loss } = result.status {
            summary.error = Some(format!(
                "the training loss became {loss} at step {step}; lower the learning rate (lr=...) or check the data scale"
            ));
        }
        summary.write(dir)?;
        #[cfg(feature = "plot")]
        if let Some(p) = &spec.plot {
            // Figures are a convenience: a failure here never fails the run it describes.
            if let Err(e) = crate::plot::plot_run(dir, p) {
                warnln!(
                    "end-of-run plots failed: {e:#} (retry with `ezflt plot {}`)",
                    dir.display()
                );
            }
        }
        #[cfg(feature = "plot")]
        let plots = crate::plot::list_pngs(&dir.join("plots"));
        #[cfg(not(feature = "plot"))]
        let plots: Vec<PathBuf> = vec![];
        if let Some(w) = &wandb {
            let code = summary.status.exit_code();
            summary.wandb = Some(logging::finish(w, code, &summary.best, &plots));
            summary.write(dir)?;
        }
        Ok(RunResult { summary })
    }
}

/// `size` samples of the test split (the training split when there is none), drawn once
/// with the seed, in their order there: the batch activations are recorded on.
fn probe(ds: &data::Dataset, size: usize, seed: u64) -> crate::track::Probe {
    use rand::seq::SliceRandom;
    let s = if ds.test.n > 0 { &ds.test } else { &ds.train };
    let f = ds.features();
    let mut idx: Vec<usize> = (0..s.n).collect();
    idx.shuffle(&mut crate::data::synthetic::data_rng(seed ^ 0x9e37_79b9));
    idx.truncate(size.min(s.n));
    idx.sort_unstable();
    crate::track::Probe {
        x: idx
            .iter()
            .flat_map(|&i| s.x[i * f..(i + 1) * f].iter().copied())
            .collect(),
        y: idx.iter().map(|&i| s.y[i] as f32).collect(),
        rows: idx.len(),
    }
}
