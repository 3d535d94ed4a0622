//! Reading a run's `features.npz` back: [`Archive`] opens it, [`Feature`] holds one tracked
//! tensor's snapshots with their step, epoch and batch, as plain arrays or burn tensors.

use super::npz;
use crate::data::GroundTruth;
use crate::track::spill;
use anyhow::{anyhow, bail, Result};
use burn::prelude::{Device, Tensor, TensorData};
use std::path::{Path, PathBuf};

/// A feature archive (`features.npz`), written by a run or a [`crate::FeatureTracker`].
pub struct Archive {
    path: PathBuf,
    inner: npz::Archive,
    layers: Vec<String>,
    steps: Vec<i64>,
    epochs: Vec<i64>,
    batches: Vec<i64>,
}

impl Archive {
    /// Opens a run directory's archive, or a `.npz` file given directly.
    pub fn open(run_or_npz: impl AsRef<Path>) -> Result<Archive> {
        let p = run_or_npz.as_ref();
        let path = if p.is_dir() {
            p.join(spill::ARCHIVE)
        } else {
            p.to_path_buf()
        };
        if !path.is_file() {
            bail!(
                "{} does not exist: the run tracked nothing (tracker=none), is still training, \
                 or the tracker was not finished (call FeatureTracker::finish)",
                path.display()
            );
        }
        let mut inner = npz::Archive::open(&path)?;
        let layers = inner.tracked();
        let steps = inner.read_i64("step")?;
        let epochs = inner.read_i64("epoch")?;
        let batches = inner.read_i64("batch")?;
        Ok(Archive {
            path,
            inner,
            layers,
            steps,
            epochs,
            batches,
        })
    }

    /// Where the archive is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tracked parameters, by module path (`layers.0.weight`).
    pub fn names(&self) -> &[String] {
        &self.layers
    }

    /// Optimizer steps of the weight snapshots (0 = initialisation).
    pub fn steps(&self) -> &[i64] {
        &self.steps
    }

    /// The weights of `name` at every recorded step.
    pub fn feature(&mut self, name: &str) -> Result<Feature> {
        if !self.layers.iter().any(|l| l == name) {
            bail!(
                "'{name}' was not tracked in {}; tracked: {}",
                self.path.display(),
                self.layers.join(", ")
            );
        }
        let all: Vec<usize> = (0..self.steps.len()).collect();
        let (shape, values) = self.inner.read_steps(name, &all)?;
        Ok(Feature {
            name: name.to_string(),
            shape,
            steps: self.steps.clone(),
            epochs: self.epochs.clone(),
            batches: self.batches.clone(),
            values,
        })
    }

    /// The gradients of `name` (tracked with gradients on), at their own steps: the
    /// gradient at step `s` is taken at the weights of step `s`, before that update.
    pub fn gradient(&mut self, name: &str) -> Result<Feature> {
        let key = format!("{name}.grad");
        if !self.inner.names().contains(&key) {
            bail!(
                "{} holds no gradients of '{name}' (track them with gradients on)",
                self.path.display()
            );
        }
        let steps = self.inner.read_i64("grad_step")?;
        let all: Vec<usize> = (0..steps.len()).collect();
        let (shape, values) = self.inner.read_steps(&key, &all)?;
        let per_epoch = self.steps_per_epoch();
        Ok(Feature {
            name: key,
            shape,
            epochs: steps.iter().map(|s| s / per_epoch).collect(),
            batches: steps.iter().map(|s| s % per_epoch).collect(),
            steps,
            values,
        })
    }

    fn steps_per_epoch(&mut self) -> i64 {
        self.inner.metadata()["steps_per_epoch"]
            .as_i64()
            .unwrap_or(1)
            .max(1)
    }

    /// Cosine of every row of the weight `param` with every ground-truth row of `truth`,
    /// per snapshot: a feature of shape `[rows, truth rows]`.
    pub fn alignment(&mut self, param: &str, truth: &str) -> Result<Feature> {
        let key = format!("align_norm.{param}.{truth}");
        if !self.inner.names().contains(&key) {
            bail!(
                "{} holds no alignment of '{param}' with '{truth}' (it needs ground truth whose \
                 vectors are as long as the weight's rows)",
                self.path.display()
            );
        }
        let all: Vec<usize> = (0..self.steps.len()).collect();
        let (shape, values) = self.inner.read_steps(&key, &all)?;
        Ok(Feature {
            name: key,
            shape,
            steps: self.steps.clone(),
            epochs: self.epochs.clone(),
            batches: self.batches.clone(),
            values,
        })
    }

    /// The ground-truth features stored with the snapshots.
    pub fn ground_truth(&mut self) -> Result<Vec<GroundTruth>> {
        let names: Vec<String> = self
            .inner
            .names()
            .into_iter()
            .filter_map(|n| n.strip_prefix("gt.").map(String::from))
            .collect();
        names
            .into_iter()
            .map(|n| {
                let a = self.inner.read(&format!("gt.{n}"))?;
                let (rows, dim) = (a.shape[0], a.shape.get(1).copied().unwrap_or(1));
                GroundTruth::new(&n, rows, dim, a.values)
            })
            .collect()
    }
}

/// One snapshot of a [`Feature`].
#[derive(Clone, Copy, Debug)]
pub struct Snapshot<'a> {
    /// Optimizer steps done when it was taken (0 = initialisation).
    pub step: i64,
    /// 0-based epoch of that step.
    pub epoch: i64,
    /// 0-based batch within the epoch (-1 at initialisation).
    pub batch: i64,
    /// Row-major values of the tensor's shape.
    pub values: &'a [f32],
}

/// One tracked tensor over training: every snapshot, with its step, epoch and batch.
#[derive(Clone, Debug)]
pub struct Feature {
    name: String,
    shape: Vec<usize>,
    steps: Vec<i64>,
    epochs: Vec<i64>,
    batches: Vec<i64>,
    values: Vec<Vec<f32>>,
}

impl Feature {
    /// The parameter's module path (`layers.0.weight`).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Shape of one snapshot.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Steps of the snapshots, ascending.
    pub fn steps(&self) -> &[i64] {
        &self.steps
    }
    /// Epoch of each snapshot.
    pub fn epochs(&self) -> &[i64] {
        &self.epochs
    }
    /// Number of snapshots.
    pub fn len(&self) -> usize {
        self.values.len()
    }
    /// No snapshot at all.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
    /// The last snapshot.
    pub fn latest(&self) -> Option<Snapshot<'_>> {
        self.len().checked_sub(1).map(|i| self.get(i))
    }
    /// The snapshot taken at step `step`, if one was.
    pub fn at_step(&self, step: i64) -> Option<Snapshot<'_>> {
        self.steps
            .iter()
            .position(|s| *s == step)
            .map(|i| self.get(i))
    }
    /// The last snapshot taken in epoch `epoch` (its end, when the schedule records it).
    pub fn at_epoch(&self, epoch: i64) -> Option<Snapshot<'_>> {
        self.epochs
            .iter()
            .rposition(|e| *e == epoch)
            .map(|i| self.get(i))
    }
    /// Snapshot `i` (0 = the first recorded).
    ///
    /// # Panics
    /// When `i >= len()`.
    pub fn get(&self, i: usize) -> Snapshot<'_> {
        Snapshot {
            step: self.steps[i],
            epoch: self.epochs[i],
            batch: self.batches[i],
            values: &self.values[i],
        }
    }
    /// Every snapshot in step order.
    pub fn iter(&self) -> impl Iterator<Item = Snapshot<'_>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
    /// Snapshot `i` as a burn tensor on `device`; `D` must be the tensor's rank.
    pub fn tensor<const D: usize>(&self, i: usize, device: &Device) -> Result<Tensor<D>> {
        if self.shape.len() != D {
            bail!(
                "'{}' has rank {} (shape {:?}), not {D}",
                self.name,
                self.shape.len(),
                self.shape
            );
        }
        let v = self.values.get(i).ok_or_else(|| {
            anyhow!(
                "'{}' has {} snapshots; {i} is out of range",
                self.name,
                self.len()
            )
        })?;
        Ok(Tensor::from_data(
            TensorData::new(v.clone(), self.shape.clone()),
            device,
        ))
    }
}
