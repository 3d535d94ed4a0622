//! The feature tracker: a trainer callback that snapshots chosen parameters (and
//! gradients, and their alignment with ground-truth features) into `features.npz`.

pub mod align;
pub mod feature_tracker;
pub mod measure;
pub mod schedule;
pub mod spill;

use crate::data::GroundTruth;
use crate::train::trainer::{Callback, ModelView, Outcome, StartInfo, StepInfo};
use anyhow::{bail, Result};
use burn::optim::GradientsParams;
use schedule::Schedule;
use serde_json::json;
use spill::{AlignJob, Index, Msg, Spill, Writer};
use std::path::{Path, PathBuf};

/// What to record, as plain values (the `tracker` config node).
#[derive(Clone, Debug)]
pub struct TrackSpec {
    /// Module paths or globs; `["auto"]` = the first weight matrix; empty = every parameter.
    pub layers: Vec<String>,
    pub weights: bool,
    pub gradients: bool,
    pub schedule: Schedule,
    pub alignment: bool,
    pub f16: bool,
    pub max_bytes: u64,
    /// Intermediate outputs to record on the probe batch (`Net::hidden` names or globs).
    pub activations: Vec<String>,
    /// Samples in the probe batch.
    pub probe_size: usize,
    /// Log the tracked weights' change from init and ground-truth alignment with every
    /// evaluation (`change_<t>`, `align_<t>_<f>`, `align_weighted_<t>_<f>`).
    pub metrics: bool,
}

/// The fixed inputs activations are recorded on: `rows` samples of `cols` values, with
/// their labels, drawn once (from the test split) and stored in the archive.
#[derive(Clone, Debug, Default)]
pub struct Probe {
    pub x: Vec<f32>,
    pub y: Vec<f32>,
    pub rows: usize,
}

/// Run facts the archive's metadata records (empty for a library user's own loop).
#[derive(Default)]
pub struct RunFacts {
    pub config_hash: String,
    pub model: String,
    pub data: String,
}

/// A tracked weight aligned with a ground-truth feature matrix.
struct AlignPair {
    param: usize,
    feature: usize,
    rows: usize,
}

pub struct Tracker {
    spec: TrackSpec,
    dir: PathBuf,
    features: Vec<GroundTruth>,
    facts: RunFacts,
    names: Vec<String>,
    shapes: Vec<Vec<usize>>,
    pairs: Vec<AlignPair>,
    steps: schedule::Plan,
    per_epoch: usize,
    writer: Option<Writer>,
    /// Bytes one weight snapshot (with its alignments) adds to the archive.
    snapshot_bytes: u64,
    grad_bytes: u64,
    last: Option<usize>,
    bytes: u64,
    truncated: bool,
    /// `(epoch, batch)` of the next snapshot when the loop says it (a hand-written loop),
    /// instead of deriving it from the step.
    at: Option<(i64, i64)>,
    /// Receives per-snapshot statistics (norm/mean/std per tensor, alignment summaries),
    /// e.g. for W&B history rows.
    pub stats: Option<StatsSink>,
    /// The probe batch and the intermediate outputs recorded on it.
    probe: Option<Probe>,
    acts: Vec<String>,
    act_units: Vec<usize>,
}

/// Where snapshot statistics go: `(step, [(name, value)])`.
pub type StatsSink = Box<dyn FnMut(usize, &[(String, f64)])>;

/// Matches a parameter name against a tracker pattern (`layers.*.weight`, `conv.*`).
fn matches(pattern: &str, name: &str) -> bool {
    crate::plan::sweep::glob_match(pattern, name)
}

impl Tracker {
    pub fn new(
        spec: TrackSpec,
        dir: &Path,
        features: Vec<GroundTruth>,
        facts: RunFacts,
    ) -> Tracker {
        Tracker {
            spec,
            dir: dir.to_path_buf(),
            features,
            facts,
            names: vec![],
            shapes: vec![],
            pairs: vec![],
            steps: Schedule::Every(1).plan(0, 1),
            per_epoch: 1,
            writer: None,
            snapshot_bytes: 0,
            grad_bytes: 0,
            last: None,
            bytes: 0,
            truncated: false,
            at: None,
            stats: None,
            probe: None,
            acts: vec![],
            act_units: vec![],
        }
    }

    /// The batch `tracker.activations` are recorded on.
    pub fn with_probe(mut self, probe: Probe) -> Tracker {
        self.probe = Some(probe);
        self
    }

    /// The parameters to track, in module order; unknown names are an error listing them all.
    pub fn select(layers: &[String], params: &[(String, Vec<usize>)]) -> Result<Vec<usize>> {
        let all: Vec<&str> = params.iter().map(|p| p.0.as_str()).collect();
        if layers.is_empty() {
            return Ok((0..params.len()).collect());
        }
        if layers.len() == 1 && layers[0] == "auto" {
            let first = params.iter().position(|p| p.1.len() >= 2).unwrap_or(0);
            return Ok(if params.is_empty() {
                vec![]
            } else {
                vec![first]
            });
        }
        for l in layers {
            if !all.iter().any(|n| matches(l, n)) {
                let hint = crate::config::suggest::did_you_mean(l, all.iter().copied())
                    .map(|s| format!(" Did you mean '{s}'?"))
                    .unwrap_or_default();
                bail!(
                    "tracker.layers: '{l}' matches no parameter of this model.{hint} The model has: {}",
                    all.join(", ")
                );
            }
        }
        Ok((0..params.len())
            .filter(|&i| layers.iter().any(|l| matches(l, &params[i].0)))
            .collect())
    }

    fn position(&self, step: usize) -> (i64, i64) {
        if let (Some(at), true) = (self.at, step > 0) {
            return at;
        }
        if step == 0 {
            (0, -1)
        } else {
            (
                ((step - 1) / self.per_epoch) as i64,
                ((step - 1) % self.per_epoch) as i64,
            )
        }
    }

    fn record(&mut self, step: usize, model: &dyn ModelView) -> Result<()> {
        if self.last == Some(step) || self.truncated || !self.spec.weights {
            return Ok(());
        }
        let (epoch, batch) = self.position(step);
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        let mut tensors: Vec<Vec<f32>> = model
            .read(&self.names)
            .into_iter()
            .map(|t| t.values)
            .collect();
        let weights = tensors.len();
        if let (Some(p), false) = (&self.probe, self.acts.is_empty()) {
            // In the archive's order: after the weights, before their alignments.
            let mut hidden = model.hidden(&p.x, p.rows);
            for name in &self.acts {
                match hidden.iter().position(|h| h.0 == *name) {
                    Some(i) => tensors.push(std::mem::take(&mut hidden[i].2)),
                    None => bail!("the model stopped exposing '{name}' during training"),
                }
            }
        }
        if let Some(sink) = self.stats.as_mut() {
            let mut items = vec![];
            for (name, t) in self.names.iter().zip(&tensors[..weights]) {
                let n = t.len().max(1) as f64;
                let mean = t.iter().map(|&v| v as f64).sum::<f64>() / n;
                let sq = t.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>();
                items.push((format!("track/{name}/norm"), sq.sqrt()));
                items.push((format!("track/{name}/mean"), mean));
                items.push((
                    format!("track/{name}/std"),
                    (sq / n - mean * mean).max(0.0).sqrt(),
                ));
            }
            for p in &self.pairs {
                let f = &self.features[p.feature];
                items.push((
                    format!("align/{}/{}/max_cos", self.names[p.param], f.name),
                    align::mean_best_cosine(&tensors[p.param], p.rows, &f.values, f.rows, f.dim),
                ));
            }
            sink(step, &items);
        }
        writer.send(Msg::Weights {
            row: [step as i64, epoch, batch],
            tensors,
        })?;
        self.last = Some(step);
        self.bytes += self.snapshot_bytes;
        if self.bytes > self.spec.max_bytes {
            self.truncated = true;
            warnln!(
                "the feature archive reached tracker.max_bytes ({} bytes) at step {step}; \
                 no further snapshots are kept (the final step is still recorded if possible). \
                 Raise tracker.max_bytes, or track less: tracker.layers, tracker.count, tracker.track_frequency, tracker.dtype=f16",
                self.spec.max_bytes
            );
        }
        Ok(())
    }
}

impl Callback for Tracker {
    fn on_train_start(&mut self, info: &StartInfo) -> Result<()> {
        let picked = Self::select(&self.spec.layers, &info.params)?;
        self.names = picked.iter().map(|&i| info.params[i].0.clone()).collect();
        self.shapes = picked.iter().map(|&i| info.params[i].1.clone()).collect();
        self.per_epoch = info.steps_per_epoch.max(1);
        self.steps = self.spec.schedule.plan(info.total_steps, self.per_epoch);
        let mut arrays: Vec<(String, Vec<usize>, bool, Index)> = vec![];
        if !self.spec.activations.is_empty() {
            let Some(p) = &self.probe else {
                bail!("tracker.activations needs a probe batch (a dataset with samples)");
            };
            if !self.spec.weights {
                bail!(
                    "tracker.activations are recorded with the weight snapshots; set \
                     tracker.track_weights=true"
                );
            }
            let hidden = info.model.hidden(&p.x, p.rows);
            let names: Vec<&str> = hidden.iter().map(|h| h.0.as_str()).collect();
            for pat in &self.spec.activations {
                if !names.iter().any(|n| matches(pat, n)) {
                    bail!(
                        "tracker.activations: '{pat}' names no intermediate output of this model; {}",
                        if names.is_empty() {
                            "it exposes none (see the README's activation names per model)".to_string()
                        } else {
                            format!("it has: {}", names.join(", "))
                        }
                    );
                }
            }
            self.acts = names
                .iter()
                .filter(|n| self.spec.activations.iter().any(|p| matches(p, n)))
                .map(|n| n.to_string())
                .collect();
            self.act_units = self
                .acts
                .iter()
                .map(|a| hidden.iter().find(|h| h.0 == *a).map_or(0, |h| h.1))
                .collect();
        }
        if self.spec.weights {
            for (n, s) in self.names.iter().zip(&self.shapes) {
                arrays.push((n.clone(), s.clone(), self.spec.f16, Index::Weights));
            }
            let rows = self.probe.as_ref().map_or(0, |p| p.rows);
            for (a, units) in self.acts.iter().zip(&self.act_units) {
                arrays.push((
                    format!("act.{a}"),
                    vec![rows, *units],
                    self.spec.f16,
                    Index::Weights,
                ));
            }
            if self.spec.alignment {
                for (pi, s) in self.shapes.iter().enumerate() {
                    let Some((&dim, lead)) = s.split_last() else {
                        continue;
                    };
                    if lead.is_empty() {
                        continue;
                    }
                    let rows: usize = lead.iter().product();
                    for (fi, f) in self
                        .features
                        .iter()
                        .enumerate()
                        .filter(|(_, f)| f.dim == dim)
                    {
                        let key = format!("{}.{}", self.names[pi], f.name);
                        arrays.push((
                            format!("align.{key}"),
                            vec![rows, f.rows],
                            false,
                            Index::Weights,
                        ));
                        arrays.push((
                            format!("align_norm.{key}"),
                            vec![rows, f.rows],
                            false,
                            Index::Weights,
                        ));
                        self.pairs.push(AlignPair {
                            param: pi,
                            feature: fi,
                            rows,
                        });
                    }
                }
            }
        }
        if self.spec.gradients {
            for (n, s) in self.names.iter().zip(&self.shapes) {
                arrays.push((format!("{n}.grad"), s.clone(), self.spec.f16, Index::Grads));
            }
        }
        if let (Some(p), false) = (&self.probe, self.acts.is_empty()) {
            let cols = p.x.len() / p.rows.max(1);
            arrays.push(("probe.x".into(), vec![p.rows, cols], false, Index::Static));
            arrays.push(("probe.y".into(), vec![p.rows], false, Index::Static));
        }
        for (i, f) in self.features.iter().enumerate() {
            arrays.push((
                format!("gt.{}", f.name),
                vec![f.rows, f.dim],
                false,
                Index::Static,
            ));
            if i == 0 {
                arrays.push((
                    "gt_features".into(),
                    vec![f.rows, f.dim],
                    false,
                    Index::Static,
                ));
            }
        }
        // Warn up front when the schedule cannot fit the budget, naming what to change.
        let bytes_of = |index: Index| -> u64 {
            arrays
                .iter()
                .filter(|a| a.3 == index)
                .map(|a| a.1.iter().product::<usize>() as u64 * if a.2 { 2 } else { 4 })
                .sum()
        };
        self.snapshot_bytes = bytes_of(Index::Weights);
        self.grad_bytes = bytes_of(Index::Grads);
        let estimate = (self.snapshot_bytes + self.grad_bytes) * self.steps.len() as u64;
        if estimate > self.spec.max_bytes {
            warnln!(
                "tracking {} snapshots of {} would write about {} MB, over tracker.max_bytes ({} MB); \
                 snapshots stop at the budget. Change tracker.count / tracker.track_frequency / tracker.schedule, \
                 tracker.layers, tracker.dtype=f16, or raise tracker.max_bytes",
                self.steps.len(),
                self.names.join(", "),
                estimate / 1_000_000,
                self.spec.max_bytes / 1_000_000
            );
        }
        // The spill and then the archive assembled from it: twice the snapshots at the peak.
        let need = 2 * estimate.min(self.spec.max_bytes);
        if let Some(free) = crate::run::preflight::free_disk(&self.dir) {
            if need > free {
                bail!(
                    "tracking {} snapshots of {} needs about {} MB of disk (spill + archive), but {} MB \
                     are free under {}; track less (tracker.count, tracker.layers, tracker.dtype=f16), \
                     lower tracker.max_bytes, or free some space",
                    self.steps.len(),
                    self.names.join(", "),
                    need / 1_000_000,
                    free / 1_000_000,
                    self.dir.display()
                );
            }
        }
        let meta = json!({
            "format": "ezflt-features/1",
            "layers": self.names,
            "param_shapes": self.shapes,
            "schedule": self.spec.schedule.describe(),
            "track_weights": self.spec.weights,
            "track_gradients": self.spec.gradients,
            "dtype": if self.spec.f16 { "f16" } else { "f32" },
            "ground_truth": self.features.iter().map(|f| json!({"name": f.name, "shape": [f.rows, f.dim]})).collect::<Vec<_>>(),
            "alignment": self.pairs.iter().map(|p| json!({"param": self.names[p.param], "feature": self.features[p.feature].name})).collect::<Vec<_>>(),
            "activations": self.acts,
            "config_hash": self.facts.config_hash,
            "model": self.facts.model,
            "data": self.facts.data,
            "steps_per_epoch": self.per_epoch,
        });
        let archive = self.dir.join(spill::ARCHIVE);
        if info.start_step > 0 && self.dir.join(spill::SPILL).join("meta.json").is_file() {
            // The stopped run was killed before assembling its archive: its spill holds every
            // snapshot (older ones included), so assemble it before starting a new one.
            spill::finish(&self.dir, false)?;
        }
        let mut sp = Spill::create(&self.dir, meta, &arrays)?;
        for (i, f) in self.features.iter().enumerate() {
            let key = format!("gt.{}", f.name);
            if let Some(a) = sp.arrays.iter_mut().find(|a| a.key == key) {
                a.push(&f.values)?;
            }
            if i == 0 {
                if let Some(a) = sp.arrays.iter_mut().find(|a| a.key == "gt_features") {
                    a.push(&f.values)?;
                }
            }
        }
        if let (Some(p), false) = (&self.probe, self.acts.is_empty()) {
            for (key, values) in [("probe.x", &p.x), ("probe.y", &p.y)] {
                if let Some(a) = sp.arrays.iter_mut().find(|a| a.key == key) {
                    a.push(values)?;
                }
            }
        }
        sp.flush_static()?;
        if info.start_step > 0 && archive.exists() {
            // A resumed run continues the archive it already has.
            spill::import(&archive, &mut sp, info.start_step)?;
            self.last = Some(info.start_step);
        }
        let aligns = self
            .pairs
            .iter()
            .map(|p| AlignJob {
                param: p.param,
                rows: p.rows,
                feature: self.features[p.feature].clone(),
            })
            .collect();
        self.writer = Some(Writer::start(sp, aligns));
        if info.start_step == 0 {
            self.record(0, info.model)?;
        }
        Ok(())
    }

    fn on_after_backward(
        &mut self,
        step: usize,
        model: &dyn ModelView,
        grads: &GradientsParams,
    ) -> Result<()> {
        if !self.spec.gradients || self.truncated || !self.steps.contains(step) {
            return Ok(());
        }
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        let tensors: Vec<Vec<f32>> = model
            .read_grads(&self.names, grads)
            .into_iter()
            .map(|t| t.values)
            .collect();
        if tensors.len() != self.names.len() {
            // A parameter without a gradient (fixed layer): nothing consistent to record.
            return Ok(());
        }
        self.bytes += self.grad_bytes;
        writer.send(Msg::Grads {
            step: step as i64,
            tensors,
        })
    }

    fn on_batch_end(&mut self, s: &StepInfo) -> Result<()> {
        if self.steps.contains(s.step) {
            self.record(s.step, s.model)?;
        }
        Ok(())
    }

    fn on_train_end(&mut self, o: &Outcome, model: &dyn ModelView) -> Result<()> {
        // The final step is always recorded, whatever stopped training.
        self.truncated = false;
        self.record(o.steps, model)?;
        if let Some(w) = self.writer.take() {
            w.finish()?;
            spill::finish(&self.dir, true)?;
        }
        Ok(())
    }
}

/// Short stable hash of the run's config text, so an archive can be matched to its config.
pub fn config_hash(text: &str) -> String {
    // FNV-1a 64: tiny, dependency-free, stable across versions (unlike std's hasher).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_selection() {
        let params = vec![
            ("layers.0.weight".to_string(), vec![4, 3]),
            ("layers.0.bias".to_string(), vec![4]),
            ("layers.1.weight".to_string(), vec![2, 4]),
        ];
        assert_eq!(Tracker::select(&["auto".into()], &params).unwrap(), vec![0]);
        assert_eq!(Tracker::select(&[], &params).unwrap(), vec![0, 1, 2]);
        assert_eq!(
            Tracker::select(&["layers.*.weight".into()], &params).unwrap(),
            vec![0, 2]
        );
        let e = Tracker::select(&["layers.0.wieght".into()], &params)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Did you mean 'layers.0.weight'?") && e.contains("layers.1.weight"),
            "{e}"
        );
    }
}
