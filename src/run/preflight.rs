//! Everything a run checks before its directory exists, so bad input creates nothing and a
//! dry run finds what a real run would: settings, data, model/loss fit, tracked layers, memory.

use super::settings::Cfg;
use super::specs::{self, RunSpec};
use crate::config::Node;
use crate::data::{self, Dataset};
use crate::model::{self, ModelIo, ModelSpec};
use crate::train::{BatchSize, OptimKind};
use anyhow::{bail, Result};

/// A job that passed every check, with its data when reading it was part of the check.
pub struct Checked {
    pub spec: RunSpec,
    pub data: Dataset,
}

/// Runs every check a real run would make before training, in the order that allocates
/// least first: settings, the memory estimate (before any data is generated), the data,
/// then the model against the data, the loss, the backend and the tracked layers.
pub fn check(job: &Node) -> Result<Checked> {
    let spec = specs::read(&Cfg::new(job, ""))?;
    crate::backend::check(&spec.backend, &spec.device)?;
    // Synthetic sources: shapes and sizes are known before generating anything.
    let known = spec.data.shape_and_task().zip(spec.data.samples());
    if let Some(((shape, task), samples)) = &known {
        let io = ModelIo {
            sample_shape: shape.clone(),
            task: *task,
        };
        check_fit(&spec, &io, *samples)?;
    }
    let ds = data::load(&spec.data, spec.data_seed)?;
    if known.is_none() {
        let io = ModelIo {
            sample_shape: ds.sample_shape.clone(),
            task: ds.task,
        };
        let samples = ds.train.n + ds.test.n + ds.extra.iter().map(|e| e.1.n).sum::<usize>();
        check_fit(&spec, &io, samples)?;
    }
    Ok(Checked { spec, data: ds })
}

/// Model, loss, tracked layers and memory for data of this shape.
fn check_fit(spec: &RunSpec, io: &ModelIo, samples: usize) -> Result<()> {
    let params = model::param_shapes(&spec.model, io)?;
    crate::train::loss::resolve(spec.loss, io.task)?;
    if let Some(t) = &spec.track {
        crate::track::Tracker::select(&t.layers, &params)?;
    }
    if spec.memory_check {
        let need = estimate(spec, io, &params, samples);
        if let Some(have) = available_memory() {
            if need.total() > have {
                bail!(
                    "this run needs about {} of memory ({}), but {} is available; \
                     make it smaller (model.widths, data.n_train / n_test / dim, batch_size), \
                     or set memory_check=false to start it anyway",
                    gib(need.total()),
                    need.describe(),
                    gib(have)
                );
            }
        }
    }
    Ok(())
}

/// Bytes a run holds at its peak, by what holds them.
#[derive(Debug)]
pub struct Estimate {
    pub params: u64,
    pub optimizer: u64,
    pub data: u64,
    pub activations: u64,
    pub tracker: u64,
}

impl Estimate {
    pub fn total(&self) -> u64 {
        self.params + self.optimizer + self.data + self.activations + self.tracker
    }

    fn describe(&self) -> String {
        format!(
            "parameters and gradients {}, optimizer state {}, data {}, activations {}, tracker {}",
            gib(self.params),
            gib(self.optimizer),
            gib(self.data),
            gib(self.activations),
            gib(self.tracker)
        )
    }
}

fn gib(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.0} MiB", (bytes as f64 / (1u64 << 20) as f64).ceil())
    }
}

/// A deliberately rough upper estimate: f32 everywhere, weights + gradients (+ a copy the
/// optimizer step makes), optimizer slots, the data on the host and again on the device,
/// and a few activation-sized buffers per layer for forward, backward and evaluation.
pub fn estimate(
    spec: &RunSpec,
    io: &ModelIo,
    params: &[(String, Vec<usize>)],
    samples: usize,
) -> Estimate {
    let f32s = |n: u128| -> u64 { (n * 4).min(u64::MAX as u128) as u64 };
    let count = |shape: &[usize]| shape.iter().map(|&d| d as u128).product::<u128>();
    let p: u128 = params.iter().map(|(_, s)| count(s)).sum();
    let slots = match spec.train.optim.kind {
        OptimKind::Sgd { momentum, .. } if momentum > 0.0 => 1,
        OptimKind::Sgd { .. } => 0,
        OptimKind::Adam { .. } | OptimKind::AdamW { .. } => 2,
    };
    let features = count(&io.sample_shape);
    let samples = samples as u128;
    let batch = match spec.train.batch {
        BatchSize::Full => samples,
        BatchSize::N(b) => (b as u128).min(samples),
    }
    // Evaluation runs in chunks of 1024 samples.
    .max(1024.min(samples));
    let tracked: u128 = spec.track.as_ref().map_or(0, |t| {
        crate::track::Tracker::select(&t.layers, params)
            .map(|ids| ids.iter().map(|&i| count(&params[i].1)).sum())
            .unwrap_or(0)
    });
    Estimate {
        params: f32s(p * 3),
        optimizer: f32s(p * slots),
        data: f32s(samples * features * 2) + (samples * 16).min(u64::MAX as u128) as u64,
        activations: f32s(batch * activations_per_sample(&spec.model, io) * 4),
        // A snapshot in flight to the writer, and its gradients.
        tracker: f32s(tracked * 2),
    }
}

/// Values one sample produces across the model's layers (inputs included).
fn activations_per_sample(m: &ModelSpec, io: &ModelIo) -> u128 {
    let shape: Vec<u128> = io.sample_shape.iter().map(|&d| d as u128).collect();
    let features: u128 = shape.iter().product();
    let outputs = io.task.outputs(features as usize) as u128;
    features
        + outputs
        + match m {
            ModelSpec::Mlp { widths, .. } => widths.iter().map(|&w| w as u128).sum(),
            ModelSpec::TwoLayerCnn { filters, .. } => shape[0] * outputs.max(2) * *filters as u128,
            ModelSpec::Cnn {
                channels, hidden, ..
            } => {
                let hw = shape.get(1).copied().unwrap_or(1) * shape.get(2).copied().unwrap_or(1);
                channels.iter().map(|&c| c as u128 * hw).sum::<u128>() + *hidden as u128
            }
            ModelSpec::ConvAutoencoder { kernels, .. } => {
                let d = shape.get(1).copied().unwrap_or(1);
                let c = kernels.map_or(d * 6 / 5, |k| k as u128);
                shape[0] * c * 3
            }
        }
}

/// Memory this process may still use: the smaller of the kernel's MemAvailable and the
/// cgroup limit left (containers, SLURM jobs). `None` where neither can be read.
fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        t.lines()
            .find(|l| l.starts_with("MemAvailable:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    let cgroup = (|| {
        let read = |f: &str| std::fs::read_to_string(format!("/sys/fs/cgroup/{f}")).ok();
        let max: u64 = read("memory.max")?.trim().parse().ok()?;
        let used: u64 = read("memory.current")?.trim().parse().ok()?;
        Some(max.saturating_sub(used))
    })();
    match (meminfo, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Bytes free for this user on the filesystem holding `dir` (`None` where unknown).
pub fn free_disk(dir: &std::path::Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: `c` is a valid NUL-terminated path and `st` a buffer statvfs fills.
        let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
        if rc != 0 {
            return None;
        }
        // SAFETY: statvfs returned 0, so it filled `st`.
        let st = unsafe { st.assume_init() };
        // The field types differ by platform (u32 or u64): widen whatever they are.
        #[allow(clippy::useless_conversion)]
        let (blocks, size) = (u64::from(st.f_bavail), u64::from(st.f_frsize));
        Some(blocks.saturating_mul(size))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hundred_million_wide_layer_is_estimated_in_gigabytes() {
        let job = crate::config::yaml::load(
            "model: {name: mlp, widths: [100000000]}\ndata: {name: gaussian_mixture}\n",
            "t.yaml",
        )
        .unwrap();
        let spec = specs::read(&Cfg::new(&job, "")).unwrap();
        let (shape, task) = spec.data.shape_and_task().unwrap();
        let io = ModelIo {
            sample_shape: shape,
            task,
        };
        let params = model::param_shapes(&spec.model, &io).unwrap();
        let e = estimate(&spec, &io, &params, 1024);
        // 20*1e8 + 1e8*3 weights alone are 9.2 GB in f32.
        assert!(e.params > 9_000_000_000 * 3 / 2, "{e:?}");
        assert!(e.total() > 27_000_000_000, "{e:?}");
    }
}
