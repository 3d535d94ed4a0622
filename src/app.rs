//! Your own ezflt: an [`App`] registers models and datasets by name and runs the whole CLI
//! over them. The built-in models and data are registered the same way, through [`Registry`].

use crate::config::Node;
use crate::data::{DataSpec, Dataset, Task};
use crate::model::{ModelIo, ModelSpec, Net};
use crate::run::settings::Cfg;
use crate::run::Job;
use crate::train::trainer::Callback;
use crate::train::Outcome;
use anyhow::Result;
use burn::prelude::Device;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// A model name the config can pick (`model=<name>`): reads its settings once.
pub(crate) trait ModelKind: Send + Sync {
    /// Validates the `model` node and returns the model it describes, not yet built.
    fn prepare(&self, cfg: &Cfg) -> Result<Box<dyn PreparedModel>>;
}

/// A model whose settings passed their checks; built only by `train`.
pub(crate) trait PreparedModel: Send + Sync {
    fn name(&self) -> &str;
    /// Parameter names and shapes for data of this shape; errors when the model does not fit it.
    fn shapes(&self, io: &ModelIo) -> Result<Vec<(String, Vec<usize>)>>;
    /// Values one sample produces across the layers, for the memory estimate; `params` are
    /// what `shapes` returned (a registered model is not built again to know them).
    fn activations_per_sample(&self, io: &ModelIo, params: &[(String, Vec<usize>)]) -> u128;
    /// Builds the model on `device` (already seeded) and trains it with `job`.
    fn train(&self, io: &ModelIo, device: &Device, job: Job<'_>) -> Result<Outcome>;
    /// Whether the data's values must be checked before the run ([`Self::check_data`]),
    /// so even synthetic data is generated in the preflight.
    fn reads_values(&self) -> bool {
        false
    }
    /// Checks on the data's values (an embedding's ids).
    fn check_data(&self, _ds: &Dataset) -> Result<()> {
        Ok(())
    }
    /// The built-in model's settings (a batched sweep stacks only built-in models).
    fn builtin(&self) -> Option<&ModelSpec> {
        None
    }
}

/// A dataset name the config can pick (`data=<name>`).
pub(crate) trait DataKind: Send + Sync {
    fn prepare(&self, cfg: &Cfg) -> Result<Box<dyn PreparedData>>;
}

/// A dataset whose settings passed their checks.
pub(crate) trait PreparedData: Send + Sync {
    /// Sample shape, task and total sample count when known without loading (synthetic data).
    fn shape_task_samples(&self) -> Option<(Vec<usize>, Task, usize)>;
    /// Checks that need no data (synthetic generators' parameter ranges).
    fn check(&self) -> Result<()>;
    fn load(&self, seed: u64) -> Result<Dataset>;
}

/// Makes a callback for each run, given the run's directory.
type CallbackFactory = Arc<dyn Fn(&Path) -> Box<dyn Callback> + Send + Sync>;

/// Every name the config can pick, and the callbacks each run gets.
pub(crate) struct Registry {
    models: Vec<(String, Arc<dyn ModelKind>)>,
    data: Vec<(String, Arc<dyn DataKind>)>,
    /// `(group/name.yaml, text)` of registered defaults, served as a config source.
    configs: Vec<(String, String)>,
    callbacks: Vec<CallbackFactory>,
}

static REGISTRY: OnceLock<Registry> = OnceLock::new();

/// The registry an [`App`] installed, or the built-in one.
pub(crate) fn registry() -> &'static Registry {
    REGISTRY.get_or_init(Registry::builtin)
}

/// The models and datasets ezflt itself brings (their settings: `conf/model`, `conf/data`).
pub(crate) const BUILTIN_MODELS: &[&str] = &[
    "mlp",
    "two_layer_cnn",
    "cnn",
    "conv_autoencoder",
    "sequential",
    "mean_field",
];
pub(crate) const BUILTIN_DATA: &[&str] = &[
    "gaussian_mixture",
    "xor",
    "signal_noise",
    "sparse_coding",
    "orthonormal_patches",
    "modular_addition",
    "sparse_parity",
    "linear_teacher",
    "multi_index",
    "digits",
    "mnist",
    "fashion_mnist",
    "cifar10",
    "numpy",
    "csv",
];

impl Registry {
    fn builtin() -> Registry {
        Registry {
            models: BUILTIN_MODELS
                .iter()
                .map(|n| (n.to_string(), Arc::new(BuiltinModel) as Arc<dyn ModelKind>))
                .collect(),
            data: BUILTIN_DATA
                .iter()
                .map(|n| (n.to_string(), Arc::new(BuiltinData) as Arc<dyn DataKind>))
                .collect(),
            configs: vec![],
            callbacks: vec![],
        }
    }

    pub(crate) fn model_names(&self) -> Vec<&str> {
        self.models.iter().map(|m| m.0.as_str()).collect()
    }
    pub(crate) fn data_names(&self) -> Vec<&str> {
        self.data.iter().map(|m| m.0.as_str()).collect()
    }
    /// The model `name` (checked against `model_names` by the caller).
    pub(crate) fn model(&self, name: &str) -> Option<&dyn ModelKind> {
        self.models
            .iter()
            .find(|m| m.0 == name)
            .map(|m| m.1.as_ref())
    }
    pub(crate) fn data(&self, name: &str) -> Option<&dyn DataKind> {
        self.data.iter().find(|m| m.0 == name).map(|m| m.1.as_ref())
    }
    pub(crate) fn config_files(&self) -> Vec<(String, String)> {
        self.configs.clone()
    }
    pub(crate) fn callbacks(&self, dir: &Path) -> Vec<Box<dyn Callback>> {
        self.callbacks.iter().map(|f| f(dir)).collect()
    }
}

/// The built-in models: `ModelSpec` read from the node, shapes computed analytically.
struct BuiltinModel;

impl ModelKind for BuiltinModel {
    fn prepare(&self, cfg: &Cfg) -> Result<Box<dyn PreparedModel>> {
        Ok(Box::new(crate::run::specs::model_spec(cfg)?))
    }
}

impl PreparedModel for ModelSpec {
    fn name(&self) -> &str {
        ModelSpec::name(self)
    }
    fn shapes(&self, io: &ModelIo) -> Result<Vec<(String, Vec<usize>)>> {
        crate::model::param_shapes(self, io)
    }
    fn activations_per_sample(&self, io: &ModelIo, _: &[(String, Vec<usize>)]) -> u128 {
        crate::run::preflight::activations_per_sample(self, io)
    }
    fn train(&self, io: &ModelIo, device: &Device, job: Job<'_>) -> Result<Outcome> {
        crate::model::build(self, io, device, job)?
    }
    fn reads_values(&self) -> bool {
        self.reads_ids()
    }
    fn check_data(&self, ds: &Dataset) -> Result<()> {
        crate::model::check_ids(self, ds)
    }
    fn builtin(&self) -> Option<&ModelSpec> {
        Some(self)
    }
}

struct BuiltinData;

impl DataKind for BuiltinData {
    fn prepare(&self, cfg: &Cfg) -> Result<Box<dyn PreparedData>> {
        Ok(Box::new(crate::run::specs::data_spec(cfg)?))
    }
}

impl PreparedData for DataSpec {
    fn shape_task_samples(&self) -> Option<(Vec<usize>, Task, usize)> {
        let (shape, task) = self.shape_and_task()?;
        Some((shape, task, self.samples()?))
    }
    fn check(&self) -> Result<()> {
        crate::data::synthetic::check(self)
    }
    fn load(&self, seed: u64) -> Result<Dataset> {
        crate::data::load(self, seed)
    }
}

/// The settings of a registered model or dataset (its config node, `model.*` or `data.*`),
/// read with the same checks and messages as the built-in ones: a wrong type names the key,
/// the file and line it was set at, and an example.
#[derive(Clone)]
pub struct Config {
    node: Node,
    path: String,
}

impl Config {
    fn of(cfg: &Cfg) -> Config {
        Config {
            node: cfg.node().clone(),
            path: cfg.path().to_string(),
        }
    }
    fn cfg(&self) -> Cfg<'_> {
        Cfg::new(&self.node, &self.path)
    }
    /// A whole number >= 1 (widths, counts), or `default` when the key is absent or null.
    pub fn count(&self, key: &str, default: usize) -> Result<usize> {
        self.cfg().count(key, default)
    }
    /// A whole number >= 0.
    pub fn usize(&self, key: &str, default: usize) -> Result<usize> {
        self.cfg().usize(key, default)
    }
    /// Any number.
    pub fn f64(&self, key: &str, default: f64) -> Result<f64> {
        self.cfg().f64(key, default)
    }
    /// A number > 0.
    pub fn positive(&self, key: &str, default: f64) -> Result<f64> {
        self.cfg().positive(key, default)
    }
    /// `true` or `false`.
    pub fn bool(&self, key: &str, default: bool) -> Result<bool> {
        self.cfg().bool(key, default)
    }
    /// A string.
    pub fn string(&self, key: &str, default: &str) -> Result<String> {
        self.cfg().str(key, default)
    }
    /// A list of whole numbers >= 1, e.g. `[64, 64]`.
    pub fn sizes(&self, key: &str, default: &[usize]) -> Result<Vec<usize>> {
        self.cfg().sizes(key, default)
    }
    /// The whole node into your own `#[derive(Deserialize)]` struct; a wrong type names the
    /// key and where it was set (reject unknown keys with `#[serde(deny_unknown_fields)]`).
    pub fn deserialize<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        crate::config::de::from_node(&self.node, &self.path)
    }
}

/// A model a user registered: its build function, called with the settings and the device.
struct UserModel<F> {
    name: String,
    build: Arc<F>,
}

struct PreparedUserModel<F> {
    name: String,
    config: Config,
    build: Arc<F>,
}

impl<M, F> ModelKind for UserModel<F>
where
    M: Net,
    F: Fn(&Config, &ModelIo, &Device) -> Result<M> + Send + Sync + 'static,
{
    fn prepare(&self, cfg: &Cfg) -> Result<Box<dyn PreparedModel>> {
        Ok(Box::new(PreparedUserModel {
            name: self.name.clone(),
            config: Config::of(cfg),
            build: self.build.clone(),
        }))
    }
}

impl<M, F> PreparedModel for PreparedUserModel<F>
where
    M: Net,
    F: Fn(&Config, &ModelIo, &Device) -> Result<M> + Send + Sync + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }
    /// Built once on the CPU to read its parameters: a registered model has no analytic shapes.
    fn shapes(&self, io: &ModelIo) -> Result<Vec<(String, Vec<usize>)>> {
        let m = (self.build)(&self.config, io, &Device::flex())
            .map_err(|e| e.context(format!("building model={}", self.name)))?;
        Ok(crate::model::param_names(&m))
    }
    /// Approximated by the output width of every weight matrix (exact for an MLP).
    fn activations_per_sample(&self, io: &ModelIo, params: &[(String, Vec<usize>)]) -> u128 {
        let features: usize = io.sample_shape.iter().product();
        let widths: usize = params
            .iter()
            .filter(|p| p.1.len() >= 2)
            .map(|p| p.1[0])
            .sum();
        (features + widths) as u128
    }
    fn train(&self, io: &ModelIo, device: &Device, job: Job<'_>) -> Result<Outcome> {
        let model = (self.build)(&self.config, io, device)
            .map_err(|e| e.context(format!("building model={}", self.name)))?;
        crate::model::WithNet::run(job, model)
    }
}

struct UserData<F> {
    name: String,
    load: Arc<F>,
}

struct PreparedUserData<F> {
    name: String,
    config: Config,
    load: Arc<F>,
}

impl<F> DataKind for UserData<F>
where
    F: Fn(&Config, u64) -> Result<Dataset> + Send + Sync + 'static,
{
    fn prepare(&self, cfg: &Cfg) -> Result<Box<dyn PreparedData>> {
        Ok(Box::new(PreparedUserData {
            name: self.name.clone(),
            config: Config::of(cfg),
            load: self.load.clone(),
        }))
    }
}

impl<F> PreparedData for PreparedUserData<F>
where
    F: Fn(&Config, u64) -> Result<Dataset> + Send + Sync + 'static,
{
    fn shape_task_samples(&self) -> Option<(Vec<usize>, Task, usize)> {
        None
    }
    fn check(&self) -> Result<()> {
        Ok(())
    }
    fn load(&self, seed: u64) -> Result<Dataset> {
        let mut ds = (self.load)(&self.config, seed)
            .map_err(|e| e.context(format!("loading data={}", self.name)))?;
        ds.validate(&self.name)?;
        if ds.name.is_empty() {
            ds.name = self.name.clone();
        }
        Ok(ds)
    }
}

/// Your own `ezflt` binary: the whole CLI (Hydra composition with your `conf/`, `--multirun`,
/// local and SLURM launchers, tracking, plots, W&B, `plot` / `inspect` / `resume` / `sync`)
/// over the built-in models and data plus the ones you register.
///
/// ```no_run
/// # use ezflt::{App, Config, ModelIo};
/// # fn build(c: &Config, io: &ModelIo, d: &burn::prelude::Device) -> anyhow::Result<MyNet> { todo!() }
/// # #[derive(burn::module::Module, Debug)] struct MyNet { l: burn::nn::Linear }
/// # impl ezflt::Net for MyNet { fn forward(&self, x: burn::prelude::Tensor<2>) -> burn::prelude::Tensor<2> { self.l.forward(x) } }
/// fn main() {
///     let code = App::new()
///         .model("my_net", "width: 32\n", build)
///         .run();
///     std::process::exit(code);
/// }
/// ```
pub struct App {
    registry: Registry,
}

impl Default for App {
    fn default() -> App {
        App::new()
    }
}

impl App {
    /// The built-in models and datasets, nothing else: `ezflt` itself is `App::new().run()`.
    pub fn new() -> App {
        App {
            registry: Registry::builtin(),
        }
    }

    /// Serves `yaml` as `<group>/<name>.yaml`, replacing an earlier registration of that name.
    fn set_defaults(&mut self, group: &str, name: &str, yaml: &str) {
        // The option's own name, so `model.name` reads it as the built-in ones do.
        let text = if yaml.lines().any(|l| l.starts_with("name:")) {
            yaml.to_string()
        } else {
            format!("name: {name}\n{yaml}")
        };
        let path = format!("{group}/{name}.yaml");
        self.registry.configs.retain(|c| c.0 != path);
        self.registry.configs.push((path, text));
    }

    /// Registers `model=<name>`. `defaults` is the YAML of its settings (what
    /// `conf/model/<name>.yaml` would hold; a file of that name in your `conf/` replaces it);
    /// `build` makes the model from them on the device it is given, for data of the shape
    /// `ModelIo` says. A name already taken (built-in included) is replaced.
    pub fn model<M, F>(mut self, name: &str, defaults: &str, build: F) -> App
    where
        M: Net,
        F: Fn(&Config, &ModelIo, &Device) -> Result<M> + Send + Sync + 'static,
    {
        self.registry.models.retain(|m| m.0 != name);
        self.registry.models.push((
            name.to_string(),
            Arc::new(UserModel {
                name: name.to_string(),
                build: Arc::new(build),
            }),
        ));
        self.set_defaults("model", name, defaults);
        self
    }

    /// Registers `data=<name>`: `load` returns the dataset for its settings and a seed
    /// (`data.seed`, else the run's `seed`).
    pub fn data<F>(mut self, name: &str, defaults: &str, load: F) -> App
    where
        F: Fn(&Config, u64) -> Result<Dataset> + Send + Sync + 'static,
    {
        self.registry.data.retain(|m| m.0 != name);
        self.registry.data.push((
            name.to_string(),
            Arc::new(UserData {
                name: name.to_string(),
                load: Arc::new(load),
            }),
        ));
        self.set_defaults("data", name, defaults);
        self
    }

    /// Adds a callback to every run: `make` is called with the run's directory when it starts.
    pub fn callback<F>(mut self, make: F) -> App
    where
        F: Fn(&Path) -> Box<dyn Callback> + Send + Sync + 'static,
    {
        self.registry.callbacks.push(Arc::new(make));
        self
    }

    /// Runs the CLI on this process's arguments (feature `cli`); returns the exit code (0 ok, 1 error,
    /// 2 usage, 130 interrupted). Call it once per process: the first `App` to run is the
    /// one its jobs (and the workers it launches) use.
    #[cfg(feature = "cli")]
    pub fn run(self) -> i32 {
        let args = std::env::args_os()
            .enumerate()
            .map(|(i, a)| {
                a.into_string().map_err(|bad| {
                    anyhow::anyhow!(
                        "argument {i} ({:?}) is not valid UTF-8: ezflt reads overrides and paths as UTF-8 text; \
                         rename the file or pass the value in UTF-8",
                        bad.to_string_lossy()
                    )
                })
            })
            .collect::<Result<Vec<String>>>();
        match args {
            Ok(a) => self.run_with(a),
            Err(e) => {
                shell::error(format_args!("{}", crate::format_error(&e)));
                shell::flush();
                1
            }
        }
    }

    /// Runs the CLI on `args` (the first is the program name, as in `std::env::args`).
    #[cfg(feature = "cli")]
    pub fn run_with(self, args: Vec<String>) -> i32 {
        if REGISTRY.set(self.registry).is_err() {
            warnln!("an ezflt App already ran in this process; its registrations stay in use");
        }
        let code = match crate::cli::run(args) {
            Ok(code) => code,
            Err(e) => {
                shell::error(format_args!("{}", crate::format_error(&e)));
                1
            }
        };
        shell::flush();
        code
    }
}

#[cfg(feature = "cli")]
use crate::shell;
