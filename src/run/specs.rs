//! Reads the resolved job config into the plain specs each layer takes (data, model,
//! training, backend), so every bad value is reported before any work starts.

use super::settings::Cfg;
use crate::app::{registry, PreparedData, PreparedModel};
use crate::data::DataSpec;
use crate::model::{Activation, ModelSpec};
use crate::track::schedule::Schedule;
use crate::track::TrackSpec;
use crate::train::{
    AdvSpec, Attack, BatchSize, CheckpointPolicy, LossKind, Norm, OptimKind, OptimSpec,
    ScheduleKind, ScheduleSpec, TrainSpec,
};
use anyhow::Result;

pub struct RunSpec {
    pub seed: u64,
    pub backend: String,
    pub device: String,
    pub threads: Option<usize>,
    /// The registered dataset `data.name` picks, settings checked.
    pub data: Box<dyn PreparedData>,
    pub data_seed: u64,
    /// The registered model `model.name` picks, settings checked.
    pub model: Box<dyn PreparedModel>,
    /// `None` = the data's natural loss.
    pub loss: Option<LossKind>,
    pub train: TrainSpec,
    /// `None` = tracking off (`tracker=none`).
    pub track: Option<TrackSpec>,
    /// End-of-run figures; `None` = `plot=none`.
    pub plot: Option<crate::plot::PlotSpec>,
    /// W&B logging; `None` = `logger=none` (or WANDB_MODE=disabled).
    #[cfg(feature = "wandb")]
    pub wandb: Option<crate::wandb::settings::Settings>,
    /// Refuse to start a run whose estimated memory exceeds what the machine has.
    pub memory_check: bool,
}

pub fn read(root: &Cfg) -> Result<RunSpec> {
    let seed = root.seed("seed", 0)?;
    let data = root.sub("data")?;
    let data_seed = data.seed("seed", seed)?;
    let loss = match root
        .choice(
            "loss",
            "auto",
            &["auto", "cross_entropy", "logistic", "mse", "hinge"],
        )?
        .as_str()
    {
        "cross_entropy" => Some(LossKind::CrossEntropy),
        "logistic" => Some(LossKind::Logistic),
        "mse" => Some(LossKind::Mse),
        "hinge" => Some(LossKind::Hinge),
        _ => None,
    };
    #[cfg(not(feature = "wandb"))]
    no_logger(&root.sub("logger")?)?;
    Ok(RunSpec {
        seed,
        backend: root.choice("backend", "auto", &["auto", "flex", "tch"])?,
        device: root.str("device", "auto")?,
        threads: match root.opt_usize("threads")? {
            Some(0) => None,
            t => t,
        },
        data: {
            let names = registry().data_names();
            let name = data.choice("name", "gaussian_mixture", &names)?;
            registry()
                .data(&name)
                .ok_or_else(|| data.err("name", "is not a registered dataset"))?
                .prepare(&data)?
        },
        data_seed,
        model: {
            let model = root.sub("model")?;
            let names = registry().model_names();
            let name = model.choice("name", "mlp", &names)?;
            registry()
                .model(&name)
                .ok_or_else(|| model.err("name", "is not a registered model"))?
                .prepare(&model)?
        },
        loss,
        train: train_spec(root, seed)?,
        track: track_spec(&root.sub("tracker")?)?,
        plot: plot_spec(&root.sub("plot")?)?,
        #[cfg(feature = "wandb")]
        wandb: logger_spec(&root.sub("logger")?)?,
        memory_check: root.bool("memory_check", true)?,
    })
}

/// A built-in dataset's settings.
pub(crate) fn data_spec(c: &Cfg) -> Result<DataSpec> {
    let name = c.choice("name", "gaussian_mixture", crate::app::BUILTIN_DATA)?;
    let path = |key: &str| -> Result<String> {
        c.opt_path(key)?.ok_or_else(|| {
            c.err(key, "is required: the path of the data file or folder. Try e.g. `data.path=/data/mnist`")
        })
    };
    Ok(match name.as_str() {
        "gaussian_mixture" => DataSpec::GaussianMixture {
            dim: c.count("dim", 20)?,
            classes: c.count("classes", 3)?,
            n_train: c.count("n_train", 512)?,
            n_test: c.count("n_test", 512)?,
            noise: c.non_negative("noise", 1.0)?,
        },
        "xor" => DataSpec::Xor {
            dim: c.count("dim", 2)?,
            n_train: c.count("n_train", 512)?,
            n_test: c.count("n_test", 512)?,
            noise: c.non_negative("noise", 0.3)?,
        },
        "signal_noise" => DataSpec::SignalNoise {
            patches: c.count("patches", 2)?,
            dim: c.count("dim", 400)?,
            n_train: c.count("n_train", 40)?,
            n_test: c.count("n_test", 2000)?,
            snr: c.non_negative("snr", 0.5)?,
            sigma_p: c.positive("sigma_p", 1.0)?,
            flip: c.fraction("flip", 0.0)?,
        },
        "sparse_coding" => {
            let dim = c.count("dim", 64)?;
            DataSpec::SparseCoding {
                dim,
                atoms: c.count("atoms", dim)?,
                k: c.count("k", 3)?,
                sigma: c.non_negative("sigma", 0.02)?,
                n_train: c.count("n_train", 4000)?,
                n_test: c.count("n_test", 2000)?,
            }
        }
        "orthonormal_patches" => DataSpec::OrthonormalPatches {
            patches: c.count("patches", 20)?,
            n_train: c.count("n_train", 1000)?,
            n_test: c.count("n_test", 1000)?,
            noise: c.non_negative("noise", 0.01)?,
        },
        "modular_addition" => DataSpec::ModularAddition {
            p: c.count("p", 31)?,
            frac_train: c.fraction("frac_train", 0.5)?,
        },
        "digits" => DataSpec::Digits {
            test_fraction: c.fraction("test_fraction", 0.2)?,
        },
        "mnist" => DataSpec::Mnist {
            path: path("path")?,
            n_train: c.opt_usize("n_train")?,
            n_test: c.opt_usize("n_test")?,
        },
        _ => DataSpec::Numpy {
            path: path("path")?,
            x_key: c.str("x_key", "x")?,
            y_key: c.str("y_key", "y")?,
            test_path: c.opt_path("test_path")?,
            test_fraction: c.fraction("test_fraction", 0.2)?,
            task: match c.opt_str("task")? {
                None => None,
                Some(_) => {
                    Some(c.choice("task", "classify", &["classify", "binary", "reconstruct"])?)
                }
            },
        },
    })
}

fn activation(c: &Cfg, default: &str) -> Result<Activation> {
    let name = c.str("activation", default)?;
    let q = c.positive("q", 3.0)?;
    let rho = c.positive("rho", 1.0)?;
    Activation::parse(&name, q, rho).map_err(|e| c.err("activation", &e))
}

/// A built-in model's settings.
pub(crate) fn model_spec(c: &Cfg) -> Result<ModelSpec> {
    let name = c.choice("name", "mlp", crate::app::BUILTIN_MODELS)?;
    Ok(match name.as_str() {
        "mlp" => ModelSpec::Mlp {
            widths: c.sizes("widths", &[64])?,
            act: activation(c, "relu")?,
            bias: c.bool("bias", true)?,
            init_scale: match c.opt_f64("init_scale")? {
                None => None,
                Some(_) => Some(c.positive("init_scale", 0.01)?),
            },
            fixed_last_layer: c.bool("fixed_last_layer", false)?,
        },
        "two_layer_cnn" => ModelSpec::TwoLayerCnn {
            filters: c.count("filters", 10)?,
            act: activation(c, "relu^q")?,
            init_scale: c.positive("init_scale", 0.01)?,
        },
        "cnn" => ModelSpec::Cnn {
            channels: c.sizes("channels", &[8, 16])?,
            kernel: c.count("kernel", 3)?,
            hidden: c.count("hidden", 64)?,
            act: activation(c, "relu")?,
        },
        _ => ModelSpec::ConvAutoencoder {
            kernels: c.opt_usize("kernels")?,
            init_scale: c.positive("init_scale", 0.001)?,
        },
    })
}

fn train_spec(root: &Cfg, seed: u64) -> Result<TrainSpec> {
    let o = root.sub("optimizer")?;
    let opt_name = o.choice("name", "sgd", &["sgd", "adam", "adamw"])?;
    let betas = || -> Result<(f64, f64)> {
        let b = o.floats("betas", &[0.9, 0.999])?;
        match b.as_slice() {
            [b1, b2] if (0.0..1.0).contains(b1) && (0.0..1.0).contains(b2) => Ok((*b1, *b2)),
            _ => Err(o.err("betas", "expected two numbers in [0, 1), e.g. [0.9,0.999]")),
        }
    };
    let kind = match opt_name.as_str() {
        "sgd" => OptimKind::Sgd {
            momentum: o.non_negative("momentum", 0.0)?,
            dampening: o.non_negative("dampening", 0.0)?,
            nesterov: o.bool("nesterov", false)?,
        },
        "adam" => OptimKind::Adam {
            betas: betas()?,
            eps: o.positive("eps", 1e-8)?,
        },
        _ => OptimKind::AdamW {
            betas: betas()?,
            eps: o.positive("eps", 1e-8)?,
        },
    };
    let lr_default = root.positive("lr", 0.1)?;
    let optim = OptimSpec {
        kind,
        lr: o.positive("lr", lr_default)?,
        weight_decay: o.non_negative("weight_decay", 0.0)?,
    };

    let s = root.sub("schedule")?;
    let schedule = ScheduleSpec {
        kind: match s
            .choice("name", "constant", &["constant", "step", "cosine"])?
            .as_str()
        {
            "step" => ScheduleKind::Step {
                step_size: s.count("step_size", 10)?,
                gamma: s.positive("gamma", 0.1)?,
            },
            "cosine" => ScheduleKind::Cosine {
                min_lr: s.non_negative("min_lr", 0.0)?,
            },
            _ => ScheduleKind::Constant,
        },
        warmup_steps: s.usize("warmup_steps", 0)?,
    };

    let a = root.sub("adv")?;
    let adv = match a
        .choice("attack", "none", &["none", "fgsm", "pgd"])?
        .as_str()
    {
        "none" => None,
        attack => {
            let eps = a.non_negative("eps", 0.3)?;
            let steps = a.count("steps", 5)?;
            Some(AdvSpec {
                attack: if attack == "fgsm" {
                    Attack::Fgsm
                } else {
                    Attack::Pgd
                },
                norm: if a.choice("norm", "l2", &["l2", "linf"])? == "l2" {
                    Norm::L2
                } else {
                    Norm::Linf
                },
                eps,
                steps,
                step_size: match a.opt_f64("step_size")? {
                    Some(_) => a.positive("step_size", 0.1)?,
                    None => 2.5 * eps / steps as f64,
                },
                eval_steps: a.usize("eval_steps", 10)?,
                train: a.bool("train", true)?,
            })
        }
    };
    // An eps of 0 is clean training (handy in sweeps over eps).
    let adv = adv.filter(|a| a.eps > 0.0);

    let batch = match root.raw("batch_size").map(|n| &n.v) {
        Some(crate::config::Value::Str(s)) if s == "full" => BatchSize::Full,
        Some(crate::config::Value::Str(_)) => return Err(root.err(
            "batch_size",
            "expected a positive integer or 'full'. Try e.g. `batch_size=64` or `batch_size=full`",
        )),
        _ => BatchSize::N(root.count("batch_size", 64)?),
    };
    Ok(TrainSpec {
        seed,
        epochs: root.count("epochs", 10)?,
        max_steps: match root.opt_usize("max_steps")? {
            Some(0) => {
                return Err(root.err(
                    "max_steps",
                    "expected an integer >= 1 (or null for epochs only)",
                ))
            }
            m => m,
        },
        batch,
        loss: LossKind::Mse, // replaced once the data's task is known
        optim,
        schedule,
        adv,
        eval_every: root.count("eval_every", 1)?,
        log_every: root.count("log_every", 10)?,
        checkpoints: match root.opt_usize("checkpoint_every")? {
            Some(n) => CheckpointPolicy::Epochs(n),
            None => CheckpointPolicy::Seconds(root.positive("checkpoint_every_s", 300.0)?),
        },
    })
}

fn track_spec(c: &Cfg) -> Result<Option<TrackSpec>> {
    if !c.bool("enabled", true)? {
        return Ok(None);
    }
    let layers = match c.raw("layers").map(|n| &n.v) {
        None => vec!["auto".to_string()],
        Some(crate::config::Value::List(l)) => l
            .iter()
            .map(|n| match &n.v {
                crate::config::Value::Str(s) => Ok(s.clone()),
                _ => Err(c.err(
                    "layers",
                    "expected a list of parameter names or globs, e.g. [layers.0.weight]",
                )),
            })
            .collect::<Result<_>>()?,
        Some(crate::config::Value::Str(s)) => vec![s.clone()],
        Some(_) => {
            return Err(c.err(
                "layers",
                "expected a list of parameter names or globs, e.g. [layers.0.weight]",
            ))
        }
    };
    let schedule = match c.opt_usize("track_frequency")? {
        Some(0) => {
            return Err(c.err(
                "track_frequency",
                "expected an integer >= 1 (snapshots every N batches)",
            ))
        }
        Some(n) => Schedule::Every(n),
        None => match c
            .choice("schedule", "log", &["log", "every", "per_epoch"])?
            .as_str()
        {
            "every" => Schedule::Every(1),
            "per_epoch" => Schedule::PerEpoch,
            _ => Schedule::Log(c.count("count", 50)?),
        },
    };
    let max_bytes = c.positive("max_bytes", 2e9)?;
    Ok(Some(TrackSpec {
        layers,
        weights: c.bool("track_weights", true)?,
        gradients: c.bool("track_gradients", false)?,
        schedule,
        alignment: c.bool("alignment", true)?,
        f16: c.choice("dtype", "f32", &["f32", "f16"])? == "f16",
        max_bytes: max_bytes as u64,
    }))
}

fn plot_spec(c: &Cfg) -> Result<Option<crate::plot::PlotSpec>> {
    if !c.bool("enabled", true)? {
        return Ok(None);
    }
    let what: Vec<String> = match c.raw("what").map(|n| &n.v) {
        None => vec![],
        Some(crate::config::Value::List(l)) => l
            .iter()
            .filter_map(|n| n.as_str().map(String::from))
            .collect(),
        Some(_) => {
            return Err(c.err(
                "what",
                "expected a list of figure kinds, e.g. [curves,evolution]",
            ))
        }
    };
    for w in &what {
        if !crate::plot::KINDS.contains(&w.as_str()) {
            return Err(c.err(
                "what",
                &format!(
                    "unknown figure '{w}'; choose from {}",
                    crate::plot::KINDS.join(", ")
                ),
            ));
        }
    }
    Ok(Some(crate::plot::PlotSpec {
        what,
        tensor: c.opt_str("tensor")?,
        step: c.opt_usize("step")?.map(|s| s as i64),
        metric: c.opt_str("metric")?,
        svg: c.choice("format", "png", &["png", "svg"])? == "svg",
        log_x: c.bool("log_x", false)?,
        ..Default::default()
    }))
}

/// Without the `wandb` feature, `logger=wandb` is an error rather than a run that logs nothing.
#[cfg(not(feature = "wandb"))]
fn no_logger(c: &Cfg) -> Result<()> {
    if c.bool("enabled", false)? {
        return Err(c.err(
            "enabled",
            "this build of ezflt has no W&B support (cargo feature `wandb`); use logger=none",
        ));
    }
    Ok(())
}

/// `logger=wandb`: config values, then the WANDB_* environment, as the official client reads them.
#[cfg(feature = "wandb")]
pub fn logger_spec(c: &Cfg) -> Result<Option<crate::wandb::settings::Settings>> {
    use crate::wandb::settings::{self, FromConfig, Mode, Timing};
    use std::time::Duration;
    if !c.bool("enabled", false)? {
        return Ok(None);
    }
    let w = c.sub("wandb")?;
    if w.raw("api_key").is_some() {
        // Keys in the config would be written to .hydra/config.yaml and every log.
        return Err(w.err(
            "api_key",
            "the API key is not read from the config, so it never lands in .hydra/ or logs; \
             set WANDB_API_KEY or put the API host in ~/.netrc (`wandb login`), and remove this key",
        ));
    }
    let secs = |key: &str, d: Duration| -> Result<Duration> {
        Ok(Duration::from_secs_f64(w.positive(key, d.as_secs_f64())?))
    };
    let t = Timing::default();
    let tags = match w.raw("tags").map(|n| &n.v) {
        None => None,
        Some(crate::config::Value::List(l)) => Some(
            l.iter()
                .map(|n| match &n.v {
                    crate::config::Value::Str(s) => Ok(s.clone()),
                    crate::config::Value::Int(i) => Ok(i.to_string()),
                    _ => Err(w.err("tags", "expected a list of strings, e.g. [baseline,adam]")),
                })
                .collect::<Result<Vec<_>>>()?,
        ),
        Some(crate::config::Value::Str(s)) => Some(
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect(),
        ),
        Some(_) => return Err(w.err("tags", "expected a list of strings, e.g. [baseline,adam]")),
    };
    let from = FromConfig {
        mode: match w.opt_str("mode")? {
            Some(m) if Mode::parse(&m).is_none() => {
                return Err(w.err(
                    "mode",
                    &format!("unknown W&B mode '{m}'; expected online, offline or disabled"),
                ))
            }
            m => m,
        },
        base_url: w.opt_str("base_url")?,
        entity: w.opt_str("entity")?,
        project: w.opt_str("project")?,
        group: w.opt_str("group")?,
        name: w.opt_str("name")?,
        notes: w.opt_str("notes")?,
        job_type: w.opt_str("job_type")?,
        tags,
        id: w.opt_str("id")?,
        dir: w.opt_path("dir")?,
        required: w.bool("required", true)?,
        upload_plots: w.bool("upload_plots", true)?,
        timing: Timing {
            request: secs("request_timeout_s", t.request)?,
            init: secs("init_timeout_s", t.init)?,
            finish: secs("finish_timeout_s", t.finish)?,
            pacing: secs("pacing_s", t.pacing)?,
            heartbeat: secs("heartbeat_s", t.heartbeat)?,
            retry_min: secs("retry_min_s", t.retry_min)?,
            retry_max: secs("retry_max_s", t.retry_max)?,
            retries: w.usize("retries", t.retries as usize)? as u32,
        },
    };
    let mut s = settings::resolve(&from, &|k| std::env::var(k).ok())
        .map_err(|e| anyhow::anyhow!("logger.wandb: {e:#}"))?;
    if s.mode == Mode::Disabled {
        return Ok(None);
    }
    s.settle_key()?;
    Ok(Some(s))
}
