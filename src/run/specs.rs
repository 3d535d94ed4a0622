//! Reads the resolved job config into the specs each layer takes (data, model, training,
//! tracking, plots, W&B), so every bad value is reported before any work starts.
//!
//! Each section derives `Deserialize` (`deny_unknown_fields`: a misspelt key is an error, as in
//! Hydra's struct mode) and has no defaults of its own: the one source of defaults is ezflt's
//! embedded `conf/`. A key a user's own file leaves out is taken from the embedded file that
//! defines the same option (`model/mlp.yaml` for `model.name: mlp`).

use super::settings::Cfg;
use super::typed::{
    choice, Count, Fraction, Names, Natural, NonNegative, Number, Positive, Seed, Sizes, Text,
};
use crate::app::{registry, PreparedData, PreparedModel};
use crate::config::de::from_node;
use crate::config::{Node, Value};
use crate::data::DataSpec;
use crate::model::{Activation, ModelSpec};
use crate::track::schedule::Schedule;
use crate::track::TrackSpec;
use crate::train::{
    AdvSpec, Attack, BatchSize, CheckpointPolicy, LossKind, Norm, OptimKind, OptimSpec,
    ScheduleKind, ScheduleSpec, TrainSpec,
};
use anyhow::Result;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;

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
    /// Float64 parameters, data and arithmetic (`dtype=f64`), for dynamics below float32's
    /// resolution (lazy training).
    pub f64: bool,
}

/// `section` (at dotted `path`) with the keys it lacks taken from ezflt's embedded
/// `conf/<builtin>.yaml`, then deserialized. Interpolations in the embedded file (`lr: ${lr}`)
/// resolve against `root`.
fn section<T: DeserializeOwned>(
    root: &Node,
    section: &Node,
    path: &str,
    builtin: Option<&str>,
) -> Result<T> {
    match builtin {
        Some(file) => from_node(&with_embedded(root, section, path, file)?, path),
        None => from_node(section, path),
    }
}

/// `section` over the embedded `conf/<file>.yaml` (its own values win).
fn with_embedded(root: &Node, section: &Node, path: &str, file: &str) -> Result<Node> {
    match embedded(root, file, path)? {
        Some(mut base) if section.as_map().is_some() => {
            base.merge_from(section.clone());
            Ok(base)
        }
        _ => Ok(section.clone()),
    }
}

/// ezflt's embedded `conf/<file>.yaml` without its defaults list, resolved as if it sat at
/// `path` in `root`; `None` when there is no such file.
fn embedded(root: &Node, file: &str, path: &str) -> Result<Option<Node>> {
    let Some((text, label)) = crate::config::sources::Source::builtin("main").load(file) else {
        return Ok(None);
    };
    let mut node = crate::config::yaml::load(&text, &label)?;
    if let Some(m) = node.as_map_mut() {
        m.shift_remove("defaults");
    }
    let at = crate::config::node::split_path(path);
    // `???` stays as it is: the section may set it, and a value still missing is reported
    // where it is read.
    let resolver = crate::config::interp::Resolver::new(root, chrono::Local::now(), true);
    Ok(Some(resolver.resolve_node(&node, &at)?))
}

choice!(Backend { Auto = "auto", Flex = "flex", Tch = "tch" });
choice!(FloatType { F32 = "f32", F64 = "f64" });
choice!(LinkChoice {
    AbsDiff = "abs_diff",
    Product = "product",
    ReluSum = "relu_sum",
    TanhSum = "tanh_sum",
});
choice!(DirectionsChoice { Coordinate = "coordinate", Random = "random" });
choice!(LossChoice {
    Auto = "auto",
    CrossEntropy = "cross_entropy",
    Logistic = "logistic",
    Mse = "mse",
    Hinge = "hinge",
});

/// `batch_size`: a positive integer or `full`.
enum Batch {
    N(usize),
    Full,
}

impl<'de> Deserialize<'de> for Batch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Batch;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a positive integer or 'full'")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Batch, E> {
                if v == "full" {
                    Ok(Batch::Full)
                } else {
                    Err(E::custom(format!(
                        "expected a positive integer or 'full', got string '{v}'. \
                         Try e.g. `batch_size=64` or `batch_size=full`"
                    )))
                }
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Batch, E> {
                match usize::try_from(v) {
                    Ok(n) if n >= 1 => Ok(Batch::N(n)),
                    _ => Err(E::custom(format!(
                        "expected a positive integer or 'full', got {v}"
                    ))),
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Batch, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(-1))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Batch, E> {
                if v.fract() == 0.0 && (1.0..1e18).contains(&v) {
                    Ok(Batch::N(v as usize))
                } else {
                    Err(E::custom(format!(
                        "expected a positive integer or 'full', got {v}"
                    )))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// The top level of the job config, as far as ezflt reads it. Not `deny_unknown_fields`:
/// users keep their own keys there (`notes:`, `hydra:`, `experiment` values).
#[derive(Deserialize)]
struct Top {
    seed: Seed,
    backend: Backend,
    device: Text,
    threads: Option<Natural>,
    /// Checked here; `optimizer.lr` follows it by interpolation.
    #[serde(rename = "lr")]
    _lr: Positive,
    epochs: Count,
    batch_size: Batch,
    max_steps: Option<Count>,
    loss: LossChoice,
    eval_every: Count,
    log_every: Count,
    checkpoint_every: Option<Natural>,
    checkpoint_every_s: Positive,
    memory_check: bool,
    dtype: FloatType,
    #[serde(default)]
    early_stopping: Option<EarlyStoppingSettings>,
}

choice!(StopMode { Auto = "auto", Max = "max", Min = "min" });

/// `early_stopping:` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EarlyStoppingSettings {
    monitor: Option<Text>,
    mode: StopMode,
    stop_at: Option<f64>,
    patience: Option<Count>,
    min_delta: NonNegative,
}

/// What every dataset section may have besides its own keys.
#[derive(Deserialize)]
struct DataSeed {
    #[serde(default)]
    seed: Option<Seed>,
}

pub fn read(root: &Node) -> Result<RunSpec> {
    // The top level the user's config leaves out comes from ezflt's config.yaml, so that
    // `${lr}` in an embedded optimizer file resolves even under a user's own primary config.
    let root = &with_embedded(root, root, "", "config")?;
    let top: Top = from_node(root, "")?;
    let seed = top.seed.0;
    let empty = Node::map();
    let child = |key: &str| -> Result<&Node> {
        match root.child(key) {
            None | Some(Node { v: Value::Null, .. }) => Ok(&empty),
            Some(n) if n.as_map().is_some() => Ok(n),
            Some(n) => Err(Cfg::new(root, "").err(
                key,
                &format!("expected a mapping (a config group), got {}", n.type_name()),
            )),
        }
    };
    let data = child("data")?;
    let data_seed = section::<DataSeed>(root, &seed_only(data), "data", None)?
        .seed
        .map_or(seed, |s| s.0);
    #[cfg(not(feature = "wandb"))]
    no_logger(child("logger")?)?;
    let mut train = train_spec(root, &top, &child)?;
    let track = track_spec(root, child("tracker")?)?;
    if let Some(tr) = track.as_ref().filter(|tr| tr.metrics) {
        train.weight_metrics = if tr.layers.is_empty() {
            vec!["*".into()]
        } else {
            tr.layers.clone()
        };
    }
    Ok(RunSpec {
        seed,
        backend: top.backend.as_str().to_string(),
        device: top.device.0.clone(),
        threads: top.threads.map(|t| t.0).filter(|&t| t > 0),
        data: {
            let cfg = Cfg::new(data, "data");
            let names = registry().data_names();
            let name = cfg.choice("name", "gaussian_mixture", &names)?;
            registry()
                .data(&name)
                .ok_or_else(|| cfg.err("name", "is not a registered dataset"))?
                .prepare(&cfg)?
        },
        data_seed,
        model: {
            let cfg = Cfg::new(child("model")?, "model");
            let names = registry().model_names();
            let name = cfg.choice("name", "mlp", &names)?;
            registry()
                .model(&name)
                .ok_or_else(|| cfg.err("name", "is not a registered model"))?
                .prepare(&cfg)?
        },
        loss: match top.loss {
            LossChoice::Auto => None,
            LossChoice::CrossEntropy => Some(LossKind::CrossEntropy),
            LossChoice::Logistic => Some(LossKind::Logistic),
            LossChoice::Mse => Some(LossKind::Mse),
            LossChoice::Hinge => Some(LossKind::Hinge),
        },
        train,
        track,
        plot: plot_spec(root, child("plot")?)?,
        #[cfg(feature = "wandb")]
        wandb: logger_spec(root, child("logger")?)?,
        memory_check: top.memory_check,
        f64: top.dtype == FloatType::F64,
    })
}

/// Just the `seed` key of a section (other keys belong to the dataset's own type).
fn seed_only(data: &Node) -> Node {
    let mut n = Node::new(Value::Map(Default::default()), data.src.clone());
    if let (Some(m), Some(s)) = (n.as_map_mut(), data.child("seed")) {
        m.insert("seed".into(), s.clone());
    }
    n
}

/// A built-in dataset's settings, one struct per `data.name`.
mod data_settings {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct GaussianMixture {
        #[serde(rename = "name")]
        _name: IgnoredAny,
        pub dim: Count,
        pub classes: Count,
        pub n_train: Count,
        pub n_test: Count,
        pub noise: NonNegative,
        #[serde(default, rename = "seed")]
        _seed: IgnoredAny,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Xor {
        #[serde(rename = "name")]
        _name: IgnoredAny,
        pub dim: Count,
        pub n_train: Count,
        pub n_test: Count,
        pub noise: NonNegative,
        #[serde(default, rename = "seed")]
        _seed: IgnoredAny,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SignalNoise {
        #[serde(rename = "name")]
        _name: IgnoredAny,
        pub patches: Count,
        pub dim: Count,
        pub n_train: Count,
        pub n_test: Count,
        pub snr: NonNegative,
        pub sigma_p: Positive,
        pub flip: Fraction,
        #[serde(default, rename = "seed")]
        _seed: IgnoredAny,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SparseCoding {
        #[serde(rename = "name")]
        _name: IgnoredAny,
        pub dim: Count,
        pub atoms: Count,
        pub k: Count,
        pub sigma: NonNegative,
        pub n_train: Count,
        pub n_test: Count,
        #[serde(default, rename = "seed")]
        _seed: IgnoredAny,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct LinearTeacher {
        #[serde(rename = "name")]
        _name: IgnoredAny,
        pub dim: Count,
        pub outputs: Count,
        pub singular_values: Vec<Positive>,
        pub n_train: Count,
        pub n_test: Count,
        #[serde(default, rename = "seed")]
        _seed: IgnoredAny,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct MultiIndex {
        #[serde(rename = "name")]
        _name: IgnoredAny,
        pub dim: Count,
        pub k: Count,
        pub link: LinkChoice,
        pub directions: DirectionsChoice,
        pub noise: NonNegative,
        pub n_train: Count,
        pub n_test: Count,
        #[serde(default, rename = "seed")]
        _seed: IgnoredAny,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SparseParity {
        #[serde(rename = "name")]
        _name: IgnoredAny,
        pub dim: Count,
        pub k: Count,
        pub n_train: Count,
        pub n_test: Count,
        pub online: bool,
        #[serde(default, rename = "seed")]
        _seed: IgnoredAny,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct OrthonormalPatches {
        #[serde(rename = "name")]
        _name: IgnoredAny,
        pub patches: Count,
        pub n_train: Count,
        pub n_test: Count,
        pub noise: NonNegative,
        #[serde(default, rename = "seed")]
        _seed: IgnoredAny,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ModularAddition {
        #[serde(rename = "name")]
        _name: IgnoredAny,
        pub p: Count,
        pub frac_train: Fraction,
        #[serde(default, rename = "seed")]
        _seed: IgnoredAny,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Digits {
        #[serde(rename = "name")]
        _name: IgnoredAny,
        pub test_fraction: Fraction,
        #[serde(default, rename = "seed")]
        _seed: IgnoredAny,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Named {
        #[serde(rename = "name")]
        _name: IgnoredAny,
        pub path: Option<Text>,
        pub mirrors: Names,
        pub sha256: std::collections::BTreeMap<String, Text>,
        pub n_train: Option<Natural>,
        pub n_test: Option<Natural>,
        #[serde(default, rename = "seed")]
        _seed: IgnoredAny,
    }
    choice!(NumpyTask {
        Classify = "classify",
        Binary = "binary",
        Regression = "regression",
        Reconstruct = "reconstruct",
    });
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Numpy {
        #[serde(rename = "name")]
        _name: IgnoredAny,
        pub path: Text,
        pub x_key: Text,
        pub y_key: Text,
        pub test_path: Option<Text>,
        pub test_fraction: Fraction,
        pub task: Option<NumpyTask>,
        #[serde(default)]
        pub remap_labels: bool,
        #[serde(default)]
        pub features_path: Option<Text>,
        #[serde(default)]
        pub features_key: Option<Text>,
        #[serde(default)]
        pub features_name: Option<Text>,
        #[serde(default, rename = "seed")]
        _seed: IgnoredAny,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Csv {
        #[serde(rename = "name")]
        _name: IgnoredAny,
        pub path: Text,
        pub target: Names,
        pub columns: Option<Names>,
        pub test_path: Option<Text>,
        pub test_fraction: Fraction,
        pub task: Option<NumpyTask>,
        #[serde(default)]
        pub remap_labels: bool,
        #[serde(default)]
        pub features_path: Option<Text>,
        #[serde(default)]
        pub features_name: Option<Text>,
        #[serde(default, rename = "seed")]
        _seed: IgnoredAny,
    }
}

/// A built-in dataset's settings.
pub(crate) fn data_spec(c: &Cfg) -> Result<DataSpec> {
    use data_settings as s;
    let name = c.choice("name", "gaussian_mixture", crate::app::BUILTIN_DATA)?;
    let file = format!("data/{name}");
    fn read<T: DeserializeOwned>(c: &Cfg, file: &str) -> Result<T> {
        section(c.node(), c.node(), c.path(), Some(file))
    }
    let path = |p: Text| crate::run::settings::expand_home(&p.0);
    Ok(match name.as_str() {
        "gaussian_mixture" => {
            let s: s::GaussianMixture = read(c, &file)?;
            DataSpec::GaussianMixture {
                dim: s.dim.0,
                classes: s.classes.0,
                n_train: s.n_train.0,
                n_test: s.n_test.0,
                noise: s.noise.0,
            }
        }
        "xor" => {
            let s: s::Xor = read(c, &file)?;
            DataSpec::Xor {
                dim: s.dim.0,
                n_train: s.n_train.0,
                n_test: s.n_test.0,
                noise: s.noise.0,
            }
        }
        "signal_noise" => {
            let s: s::SignalNoise = read(c, &file)?;
            DataSpec::SignalNoise {
                patches: s.patches.0,
                dim: s.dim.0,
                n_train: s.n_train.0,
                n_test: s.n_test.0,
                snr: s.snr.0,
                sigma_p: s.sigma_p.0,
                flip: s.flip.0,
            }
        }
        "sparse_coding" => {
            let s: s::SparseCoding = read(c, &file)?;
            DataSpec::SparseCoding {
                dim: s.dim.0,
                atoms: s.atoms.0,
                k: s.k.0,
                sigma: s.sigma.0,
                n_train: s.n_train.0,
                n_test: s.n_test.0,
            }
        }
        "linear_teacher" => {
            let s: s::LinearTeacher = read(c, &file)?;
            DataSpec::LinearTeacher {
                dim: s.dim.0,
                outputs: s.outputs.0,
                singular_values: s.singular_values.into_iter().map(|v| v.0).collect(),
                n_train: s.n_train.0,
                n_test: s.n_test.0,
            }
        }
        "multi_index" => {
            let s: s::MultiIndex = read(c, &file)?;
            DataSpec::MultiIndex {
                dim: s.dim.0,
                k: s.k.0,
                link: match s.link {
                    LinkChoice::AbsDiff => crate::data::Link::AbsDiff,
                    LinkChoice::Product => crate::data::Link::Product,
                    LinkChoice::ReluSum => crate::data::Link::ReluSum,
                    LinkChoice::TanhSum => crate::data::Link::TanhSum,
                },
                random_directions: s.directions == DirectionsChoice::Random,
                noise: s.noise.0,
                n_train: s.n_train.0,
                n_test: s.n_test.0,
            }
        }
        "sparse_parity" => {
            let s: s::SparseParity = read(c, &file)?;
            DataSpec::SparseParity {
                dim: s.dim.0,
                k: s.k.0,
                n_train: s.n_train.0,
                n_test: s.n_test.0,
                online: s.online,
            }
        }
        "orthonormal_patches" => {
            let s: s::OrthonormalPatches = read(c, &file)?;
            DataSpec::OrthonormalPatches {
                patches: s.patches.0,
                n_train: s.n_train.0,
                n_test: s.n_test.0,
                noise: s.noise.0,
            }
        }
        "modular_addition" => {
            let s: s::ModularAddition = read(c, &file)?;
            DataSpec::ModularAddition {
                p: s.p.0,
                frac_train: s.frac_train.0,
            }
        }
        "digits" => {
            let s: s::Digits = read(c, &file)?;
            DataSpec::Digits {
                test_fraction: s.test_fraction.0,
            }
        }
        "mnist" | "fashion_mnist" | "cifar10" => {
            let s: s::Named = read(c, &file)?;
            DataSpec::Named {
                set: crate::data::named::Named::parse(&name)
                    .ok_or_else(|| anyhow::anyhow!("data.name {name}: not a named dataset"))?,
                path: s.path.map(path),
                remote: crate::data::download::Remote {
                    mirrors: s.mirrors.0,
                    sha256: s.sha256.into_iter().map(|(k, v)| (k, v.0)).collect(),
                },
                n_train: s.n_train.map(|n| n.0),
                n_test: s.n_test.map(|n| n.0),
            }
        }
        "csv" => {
            let s: s::Csv = read(c, &file)?;
            DataSpec::Csv {
                path: path(s.path),
                target: s.target.0,
                columns: s.columns.map(|c| c.0),
                test_path: s.test_path.map(path),
                test_fraction: s.test_fraction.0,
                task: s.task.map(|t| t.as_str().to_string()),
                labels: crate::data::LabelOptions {
                    remap: s.remap_labels,
                    features_path: s.features_path.map(path),
                    features_key: None,
                    features_name: s.features_name.map_or("features".into(), |n| n.0),
                },
            }
        }
        _ => {
            let s: s::Numpy = read(c, &file)?;
            DataSpec::Numpy {
                path: path(s.path),
                x_key: s.x_key.0,
                y_key: s.y_key.0,
                test_path: s.test_path.map(path),
                test_fraction: s.test_fraction.0,
                task: s.task.map(|t| t.as_str().to_string()),
                labels: crate::data::LabelOptions {
                    remap: s.remap_labels,
                    features_path: s.features_path.map(path),
                    features_key: s.features_key.map(|k| k.0),
                    features_name: s.features_name.map_or("features".into(), |n| n.0),
                },
            }
        }
    })
}

/// A built-in model's settings, one struct per `model.name`.
mod model_settings {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Mlp {
        #[serde(rename = "name")]
        _name: IgnoredAny,
        // model.init_from and model.freeze: read for every model by `weights_spec`.
        #[serde(rename = "init_from", default)]
        _init_from: Option<IgnoredAny>,
        #[serde(rename = "freeze", default)]
        _freeze: Option<IgnoredAny>,
        pub widths: Sizes,
        pub activation: Text,
        pub q: Option<Positive>,
        pub rho: Option<Positive>,
        pub bias: bool,
        pub init_scale: Option<Positive>,
        pub fixed_last_layer: bool,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct TwoLayerCnn {
        #[serde(rename = "name")]
        _name: IgnoredAny,
        // model.init_from and model.freeze: read for every model by `weights_spec`.
        #[serde(rename = "init_from", default)]
        _init_from: Option<IgnoredAny>,
        #[serde(rename = "freeze", default)]
        _freeze: Option<IgnoredAny>,
        pub filters: Count,
        pub activation: Text,
        pub q: Option<Positive>,
        pub rho: Option<Positive>,
        pub init_scale: Positive,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Cnn {
        #[serde(rename = "name")]
        _name: IgnoredAny,
        // model.init_from and model.freeze: read for every model by `weights_spec`.
        #[serde(rename = "init_from", default)]
        _init_from: Option<IgnoredAny>,
        #[serde(rename = "freeze", default)]
        _freeze: Option<IgnoredAny>,
        pub channels: Sizes,
        pub kernel: Count,
        pub hidden: Count,
        pub activation: Text,
        pub q: Option<Positive>,
        pub rho: Option<Positive>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct MeanField {
        #[serde(rename = "name")]
        _name: IgnoredAny,
        // model.init_from and model.freeze: read for every model by `weights_spec`.
        #[serde(rename = "init_from", default)]
        _init_from: Option<IgnoredAny>,
        #[serde(rename = "freeze", default)]
        _freeze: Option<IgnoredAny>,
        pub width: Count,
        pub scale: Positive,
        pub symmetric: bool,
        pub activation: Text,
        pub q: Option<Positive>,
        pub rho: Option<Positive>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Sequential {
        #[serde(rename = "name")]
        _name: IgnoredAny,
        // model.init_from and model.freeze: read for every model by `weights_spec`.
        #[serde(rename = "init_from", default)]
        _init_from: Option<IgnoredAny>,
        #[serde(rename = "freeze", default)]
        _freeze: Option<IgnoredAny>,
        pub init: Option<Positive>,
        pub layers: Vec<serde_json::Value>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ConvAutoencoder {
        #[serde(rename = "name")]
        _name: IgnoredAny,
        // model.init_from and model.freeze: read for every model by `weights_spec`.
        #[serde(rename = "init_from", default)]
        _init_from: Option<IgnoredAny>,
        #[serde(rename = "freeze", default)]
        _freeze: Option<IgnoredAny>,
        pub kernels: Option<Count>,
        pub init_scale: Positive,
    }
}

/// `activation` with the `q` and `rho` it may need; a power or knee it needs and the model's
/// config lacks is named with the override that adds it.
fn activation(
    c: &Cfg,
    name: &Text,
    q: Option<Positive>,
    rho: Option<Positive>,
) -> Result<Activation> {
    let needs_q = name.0 == "relu^q" || name.0.starts_with("smooth");
    let needs_rho = name.0.starts_with("smooth");
    let missing = |key: &str, example: &str| {
        c.err(
            "activation",
            &format!(
                "'{}' needs {}.{key}, which this model's config does not have; add it with \
                 `+{}.{key}={example}`",
                name.0,
                c.path(),
                c.path()
            ),
        )
    };
    let q = match q {
        Some(q) => q.0,
        None if needs_q => return Err(missing("q", "3")),
        None => 1.0,
    };
    let rho = match rho {
        Some(r) => r.0,
        None if needs_rho => return Err(missing("rho", "1.0")),
        None => 1.0,
    };
    Activation::parse(&name.0, q, rho).map_err(|e| c.err("activation", &e))
}

/// A built-in model's settings.
pub(crate) fn model_spec(c: &Cfg) -> Result<ModelSpec> {
    use model_settings as s;
    let name = c.choice("name", "mlp", crate::app::BUILTIN_MODELS)?;
    let file = format!("model/{name}");
    fn read<T: DeserializeOwned>(c: &Cfg, file: &str) -> Result<T> {
        section(c.node(), c.node(), c.path(), Some(file))
    }
    Ok(match name.as_str() {
        "mlp" => {
            let s: s::Mlp = read(c, &file)?;
            ModelSpec::Mlp {
                widths: s.widths.0,
                act: activation(c, &s.activation, s.q, s.rho)?,
                bias: s.bias,
                init_scale: s.init_scale.map(|x| x.0),
                fixed_last_layer: s.fixed_last_layer,
            }
        }
        "two_layer_cnn" => {
            let s: s::TwoLayerCnn = read(c, &file)?;
            ModelSpec::TwoLayerCnn {
                filters: s.filters.0,
                act: activation(c, &s.activation, s.q, s.rho)?,
                init_scale: s.init_scale.0,
            }
        }
        "cnn" => {
            let s: s::Cnn = read(c, &file)?;
            ModelSpec::Cnn {
                channels: s.channels.0,
                kernel: s.kernel.0,
                hidden: s.hidden.0,
                act: activation(c, &s.activation, s.q, s.rho)?,
            }
        }
        "mean_field" => {
            let s: s::MeanField = read(c, &file)?;
            ModelSpec::MeanField {
                width: s.width.0,
                scale: s.scale.0,
                symmetric: s.symmetric,
                act: activation(c, &s.activation, s.q, s.rho)?,
            }
        }
        "sequential" => {
            let s: s::Sequential = read(c, &file)?;
            if s.layers.is_empty() {
                return Err(c.err("layers", "a sequential model needs at least one layer"));
            }
            let layers = s
                .layers
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    crate::model::sequential::LayerSpec::parse(v).map_err(|e| {
                        let at = c
                            .node()
                            .child("layers")
                            .and_then(|l| l.child(&i.to_string()))
                            .and_then(|n| n.src.as_deref())
                            .map(|s| format!(" (set at {s})"))
                            .unwrap_or_default();
                        anyhow::anyhow!("config key '{}.layers.{i}'{at}: {e}", c.path())
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            ModelSpec::Sequential {
                layers,
                init: s.init.map(|x| x.0),
            }
        }
        _ => {
            let s: s::ConvAutoencoder = read(c, &file)?;
            ModelSpec::ConvAutoencoder {
                kernels: s.kernels.map(|k| k.0),
                init_scale: s.init_scale.0,
            }
        }
    })
}

/// The optimizer, schedule and attack sections, one struct per option.
mod train_settings {
    use super::*;

    choice!(OptimName { Sgd = "sgd", Adam = "adam", Adamw = "adamw" });
    choice!(ScheduleName { Constant = "constant", Step = "step", Cosine = "cosine" });
    choice!(AttackName { None = "none", Fgsm = "fgsm", Pgd = "pgd" });
    choice!(NormName { L2 = "l2", Linf = "linf" });

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Sgd {
        #[serde(rename = "name")]
        _name: IgnoredAny,
        pub lr: Positive,
        pub momentum: NonNegative,
        pub dampening: NonNegative,
        pub nesterov: bool,
        pub weight_decay: NonNegative,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Adam {
        pub name: OptimName,
        pub lr: Positive,
        pub betas: Vec<Number>,
        pub eps: Positive,
        pub weight_decay: NonNegative,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Schedule {
        pub name: ScheduleName,
        pub warmup_steps: Natural,
        #[serde(default)]
        pub step_size: Option<Count>,
        #[serde(default)]
        pub gamma: Option<Positive>,
        #[serde(default)]
        pub min_lr: Option<NonNegative>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Attack {
        pub attack: AttackName,
        pub norm: NormName,
        pub eps: NonNegative,
        /// PGD's; FGSM takes one step of size eps.
        pub steps: Option<Count>,
        pub step_size: Option<Positive>,
        pub eval_steps: Natural,
        pub train: bool,
    }
}

/// The key an option needs and its config lacks.
fn needs(c: &Cfg, key: &str, option: &str) -> anyhow::Error {
    c.err(
        key,
        &format!("{option} needs it; add it with `+{}.{key}=...`", c.path()),
    )
}

fn train_spec<'a>(
    root: &'a Node,
    top: &Top,
    child: &dyn Fn(&str) -> Result<&'a Node>,
) -> Result<TrainSpec> {
    use train_settings as s;
    let o = child("optimizer")?;
    let oc = Cfg::new(o, "optimizer");
    let opt_name = oc.choice("name", "sgd", s::OptimName::NAMES)?;
    let file = format!("optimizer/{opt_name}");
    let (kind, lr, weight_decay) = if opt_name == "sgd" {
        let s: s::Sgd = section(root, o, "optimizer", Some(&file))?;
        let kind = OptimKind::Sgd {
            momentum: s.momentum.0,
            dampening: s.dampening.0,
            nesterov: s.nesterov,
        };
        (kind, s.lr.0, s.weight_decay.0)
    } else {
        let s: s::Adam = section(root, o, "optimizer", Some(&file))?;
        let betas = match s.betas.as_slice() {
            [b1, b2] if (0.0..1.0).contains(&b1.0) && (0.0..1.0).contains(&b2.0) => (b1.0, b2.0),
            _ => return Err(oc.err("betas", "expected two numbers in [0, 1), e.g. [0.9,0.999]")),
        };
        let kind = if s.name == s::OptimName::Adam {
            OptimKind::Adam {
                betas,
                eps: s.eps.0,
            }
        } else {
            OptimKind::AdamW {
                betas,
                eps: s.eps.0,
            }
        };
        (kind, s.lr.0, s.weight_decay.0)
    };
    let optim = OptimSpec {
        kind,
        lr,
        weight_decay,
    };

    let sn = child("schedule")?;
    let sc = Cfg::new(sn, "schedule");
    let sched_name = sc.choice("name", "constant", s::ScheduleName::NAMES)?;
    let sched: s::Schedule = section(
        root,
        sn,
        "schedule",
        Some(&format!("schedule/{sched_name}")),
    )?;
    let schedule = ScheduleSpec {
        kind: match sched.name {
            s::ScheduleName::Step => ScheduleKind::Step {
                step_size: sched
                    .step_size
                    .ok_or_else(|| needs(&sc, "step_size", "schedule 'step'"))?
                    .0,
                gamma: sched
                    .gamma
                    .ok_or_else(|| needs(&sc, "gamma", "schedule 'step'"))?
                    .0,
            },
            s::ScheduleName::Cosine => ScheduleKind::Cosine {
                min_lr: sched
                    .min_lr
                    .ok_or_else(|| needs(&sc, "min_lr", "schedule 'cosine'"))?
                    .0,
            },
            s::ScheduleName::Constant => ScheduleKind::Constant,
        },
        warmup_steps: sched.warmup_steps.0,
    };

    let a = child("adv")?;
    let ac = Cfg::new(a, "adv");
    let attack = ac.choice("attack", "none", s::AttackName::NAMES)?;
    let adv = if attack == "none" {
        None
    } else {
        let s: s::Attack = section(root, a, "adv", Some(&format!("adv/{attack}")))?;
        let eps = s.eps.0;
        let steps = match (s.attack, s.steps) {
            (s::AttackName::Fgsm, _) => 1,
            (_, Some(n)) => n.0,
            (_, None) => return Err(needs(&ac, "steps", "the pgd attack")),
        };
        Some(AdvSpec {
            attack: if s.attack == s::AttackName::Fgsm {
                Attack::Fgsm
            } else {
                Attack::Pgd
            },
            norm: match s.norm {
                s::NormName::L2 => Norm::L2,
                s::NormName::Linf => Norm::Linf,
            },
            eps,
            steps,
            step_size: s.step_size.map_or(2.5 * eps / steps as f64, |x| x.0),
            eval_steps: s.eval_steps.0,
            train: s.train,
        })
    };
    // An eps of 0 is clean training (handy in sweeps over eps).
    let adv = adv.filter(|a| a.eps > 0.0);

    let weights = weights_spec(child("model")?)?;

    Ok(TrainSpec {
        seed: top.seed.0,
        epochs: top.epochs.0,
        max_steps: top.max_steps.map(|m| m.0),
        batch: match top.batch_size {
            Batch::Full => BatchSize::Full,
            Batch::N(n) => BatchSize::N(n),
        },
        loss: LossKind::Mse, // replaced once the data's task is known
        optim,
        schedule,
        adv,
        eval_every: top.eval_every.0,
        log_every: top.log_every.0,
        checkpoints: match top.checkpoint_every {
            Some(n) => CheckpointPolicy::Epochs(n.0),
            None => CheckpointPolicy::Seconds(top.checkpoint_every_s.0),
        },
        weights,
        weight_metrics: vec![],
        early_stopping: top.early_stopping.as_ref().and_then(|e| {
            let monitor = e.monitor.as_ref()?.0.clone();
            let maximize = match e.mode {
                StopMode::Max => true,
                StopMode::Min => false,
                StopMode::Auto => crate::train::EarlyStopping::auto_maximize(&monitor),
            };
            Some(crate::train::EarlyStopping {
                monitor,
                maximize,
                stop_at: e.stop_at,
                patience: e.patience.map(|p| p.0),
                min_delta: e.min_delta.0,
            })
        }),
    })
}

/// `model.init_from` and `model.freeze`, which every model takes (a registered model's own
/// defaults need not list them: `+model.init_from=...`). A relative path is the working
/// directory's, made absolute here so sweep workers and resumes find the same file.
fn weights_spec(m: &Node) -> Result<crate::model::weights::WeightsSpec> {
    #[derive(Deserialize)]
    struct W {
        #[serde(default)]
        name: Option<Text>,
        #[serde(default)]
        init_from: Option<Text>,
        #[serde(default)]
        freeze: Option<Names>,
    }
    let w: W = crate::config::de::from_node(m, "model")?;
    let init_from = match w.init_from {
        Some(p) => {
            let p = std::path::PathBuf::from(p.0);
            let abs = if p.is_absolute() {
                p
            } else {
                std::env::current_dir()?.join(p)
            };
            if !abs.is_file() {
                return Err(Cfg::new(m, "model").err(
                    "init_from",
                    &format!(
                        "{} does not exist; give a state dict saved with                          torch.save(model.state_dict(), 'weights.pt') or a .safetensors file",
                        abs.display()
                    ),
                ));
            }
            Some(abs)
        }
        None => None,
    };
    Ok(crate::model::weights::WeightsSpec {
        model: w.name.map(|n| n.0).unwrap_or_default(),
        init_from,
        freeze: w.freeze.map(|f| f.0).unwrap_or_default(),
    })
}

/// Whether an optional section (`tracker`, `plot`, `logger`) is on; `tracker=none` is
/// `enabled: false` and nothing else.
fn enabled(c: &Cfg, default: bool) -> Result<bool> {
    c.bool("enabled", default)
}

choice!(TrackSchedule { Log = "log", Every = "every", PerEpoch = "per_epoch" });
choice!(Dtype { F32 = "f32", F16 = "f16" });

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Tracker {
    #[serde(rename = "enabled")]
    _enabled: bool,
    layers: Names,
    track_weights: bool,
    track_gradients: bool,
    schedule: TrackSchedule,
    count: Count,
    track_frequency: Option<Count>,
    alignment: bool,
    dtype: Dtype,
    max_bytes: Positive,
    activations: Names,
    probe_size: Count,
    metrics: bool,
}

fn track_spec(root: &Node, node: &Node) -> Result<Option<TrackSpec>> {
    if !enabled(&Cfg::new(node, "tracker"), true)? {
        return Ok(None);
    }
    let t: Tracker = section(root, node, "tracker", Some("tracker/default"))?;
    let schedule = match (t.track_frequency, t.schedule) {
        (Some(n), _) => Schedule::Every(n.0),
        (None, TrackSchedule::Every) => Schedule::Every(1),
        (None, TrackSchedule::PerEpoch) => Schedule::PerEpoch,
        (None, TrackSchedule::Log) => Schedule::Log(t.count.0),
    };
    Ok(Some(TrackSpec {
        layers: t.layers.0,
        weights: t.track_weights,
        gradients: t.track_gradients,
        schedule,
        alignment: t.alignment,
        f16: t.dtype == Dtype::F16,
        max_bytes: t.max_bytes.0 as u64,
        activations: t.activations.0,
        probe_size: t.probe_size.0,
        metrics: t.metrics,
    }))
}

choice!(Format { Png = "png", Svg = "svg" });

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Plot {
    #[serde(rename = "enabled")]
    _enabled: bool,
    what: Names,
    tensor: Option<Text>,
    step: Option<Natural>,
    metric: Option<Text>,
    format: Format,
    log_x: bool,
}

fn plot_spec(root: &Node, node: &Node) -> Result<Option<crate::plot::PlotSpec>> {
    let c = Cfg::new(node, "plot");
    if !enabled(&c, true)? {
        return Ok(None);
    }
    let p: Plot = section(root, node, "plot", Some("plot/default"))?;
    for w in &p.what.0 {
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
        what: p.what.0,
        tensor: p.tensor.map(|t| t.0),
        step: p.step.map(|s| s.0 as i64),
        metric: p.metric.map(|m| m.0),
        svg: p.format == Format::Svg,
        log_x: p.log_x,
        ..Default::default()
    }))
}

/// Without the `wandb` feature, `logger=wandb` is an error rather than a run that logs nothing.
#[cfg(not(feature = "wandb"))]
fn no_logger(node: &Node) -> Result<()> {
    let c = Cfg::new(node, "logger");
    if enabled(&c, false)? {
        return Err(c.err(
            "enabled",
            "this build of ezflt has no W&B support (cargo feature `wandb`); use logger=none",
        ));
    }
    Ok(())
}

#[cfg(feature = "wandb")]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Logger {
    #[serde(rename = "enabled")]
    _enabled: bool,
    wandb: WandbSection,
}

/// `logger.wandb`; every `None` falls back to the `WANDB_*` environment.
#[cfg(feature = "wandb")]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WandbSection {
    project: Option<Text>,
    entity: Option<Text>,
    mode: Option<Text>,
    base_url: Option<Text>,
    group: Option<Text>,
    name: Option<Text>,
    notes: Option<Text>,
    job_type: Option<Text>,
    tags: Option<Names>,
    id: Option<Text>,
    dir: Option<Text>,
    required: bool,
    upload_plots: bool,
    request_timeout_s: Positive,
    init_timeout_s: Positive,
    finish_timeout_s: Positive,
    pacing_s: Positive,
    heartbeat_s: Positive,
    retry_min_s: Positive,
    retry_max_s: Positive,
    retries: Natural,
}

/// `logger=wandb`: config values, then the WANDB_* environment, as the official client reads them.
#[cfg(feature = "wandb")]
pub fn logger_spec(root: &Node, node: &Node) -> Result<Option<crate::wandb::settings::Settings>> {
    use crate::wandb::settings::{self, FromConfig, Mode, Timing};
    use std::time::Duration;
    let c = Cfg::new(node, "logger");
    if !enabled(&c, false)? {
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
    let l: Logger = section(root, node, "logger", Some("logger/wandb"))?;
    let s = l.wandb;
    if let Some(m) = s.mode.as_ref().filter(|m| Mode::parse(&m.0).is_none()) {
        return Err(w.err(
            "mode",
            &format!(
                "unknown W&B mode '{}'; expected online, offline or disabled",
                m.0
            ),
        ));
    }
    let text = |t: Option<Text>| t.map(|t| t.0);
    let secs = |p: Positive| Duration::from_secs_f64(p.0);
    let from = FromConfig {
        mode: text(s.mode),
        base_url: text(s.base_url),
        entity: text(s.entity),
        project: text(s.project),
        group: text(s.group),
        name: text(s.name),
        notes: text(s.notes),
        job_type: text(s.job_type),
        // A comma-separated string (`tags=a,b` reaches us as a list, `tags='a,b'` as text).
        tags: s.tags.map(|t| {
            t.0.iter()
                .flat_map(|x| x.split(','))
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        }),
        id: text(s.id),
        dir: s.dir.map(|d| crate::run::settings::expand_home(&d.0)),
        required: s.required,
        upload_plots: s.upload_plots,
        timing: Timing {
            request: secs(s.request_timeout_s),
            init: secs(s.init_timeout_s),
            finish: secs(s.finish_timeout_s),
            pacing: secs(s.pacing_s),
            heartbeat: secs(s.heartbeat_s),
            retry_min: secs(s.retry_min_s),
            retry_max: secs(s.retry_max_s),
            retries: s.retries.0 as u32,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every option ezflt ships (`adv=fgsm`, `schedule=step`, ...) reads as it is, and a job
    /// that names only a few keys gets the rest from the embedded files.
    #[test]
    fn every_embedded_option_reads_and_left_out_keys_come_from_it() {
        let src = crate::config::sources::Source::builtin("main");
        let groups = [
            "model",
            "data",
            "optimizer",
            "schedule",
            "adv",
            "tracker",
            "plot",
            "logger",
        ];
        let mut seen = 0;
        for group in groups {
            let (options, _) = src.list(group);
            assert!(!options.is_empty(), "{group}");
            for option in options {
                let (text, label) = src.load(&format!("{group}/{option}")).unwrap();
                let mut job = crate::config::yaml::load("lr: 0.1\n", "t.yaml").unwrap();
                let mut node = crate::config::yaml::load(&text, &label).unwrap();
                // The mandatory keys (`???`) of the file sources.
                for (key, value) in [("path", "/some/file.npz"), ("target", "label")] {
                    if let Some(Node {
                        v: Value::Missing, ..
                    }) = node.child(key)
                    {
                        node.set_path_create(key, Node::str(value));
                    }
                }
                job.set_path_create(group, node);
                if group == "logger" {
                    job.set_path_create("logger.wandb.mode", Node::str("offline"));
                }
                // A job config arrives resolved (`lr: ${lr}` is a number by then).
                let resolver =
                    crate::config::interp::Resolver::new(&job, chrono::Local::now(), false);
                let job = resolver.resolve_node(&job, &[]).unwrap();
                let spec = read(&job).unwrap_or_else(|e| panic!("{group}={option}: {e:#}"));
                assert_eq!(spec.train.optim.lr, 0.1);
                seen += 1;
            }
        }
        assert!(seen > 25, "{seen}");
        let job = crate::config::yaml::load(
            "adv: {attack: pgd, eps: 0.5}\nmodel: {name: mlp, widths: 8}\n",
            "t.yaml",
        )
        .unwrap();
        let spec = read(&job).unwrap();
        let adv = spec.train.adv.unwrap();
        assert_eq!((adv.eps, adv.steps, adv.eval_steps), (0.5, 5, 10));
        assert_eq!(spec.train.epochs, 10);
    }
}
