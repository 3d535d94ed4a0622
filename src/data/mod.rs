//! Datasets as plain host arrays: synthetic generators from theory papers (with their
//! ground-truth features) and real data from files. No burn here; the trainer uploads.

pub mod download;
pub mod files;
pub mod named;
pub mod synthetic;

use anyhow::Result;

/// What the labels mean, which fixes the model's output width and the natural loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Task {
    /// `classes` labels 0..classes; one logit per class.
    Classify {
        /// Number of classes.
        classes: usize,
    },
    /// Labels 0/1 read as -1/+1 (theory papers' convention); one output `f(x)`.
    Binary,
    /// No labels: the model reconstructs its input (autoencoders).
    Reconstruct,
    /// Real-valued targets (`Split::targets`), `outputs` of them per sample; MSE, R².
    Regress {
        /// Targets per sample.
        outputs: usize,
    },
}

impl Task {
    /// The model's output width for this task on samples of `features` values.
    pub fn outputs(&self, features: usize) -> usize {
        match self {
            Task::Classify { classes } => *classes,
            Task::Binary => 1,
            Task::Reconstruct => features,
            Task::Regress { outputs } => *outputs,
        }
    }

    /// Classification (an accuracy is measured); not reconstruction or regression.
    pub fn has_labels(&self) -> bool {
        matches!(self, Task::Classify { .. } | Task::Binary)
    }
}

/// One split: `n` samples of `features` values each, row-major, plus integer labels.
#[derive(Clone, Debug, Default)]
pub struct Split {
    /// `n` x features values, row-major.
    pub x: Vec<f32>,
    /// `n` labels: class ids 0..K-1, 0/1 for binary tasks, zeros for reconstruction.
    pub y: Vec<i64>,
    /// Number of samples.
    pub n: usize,
    /// Regression targets, `n` x outputs values row-major (empty for other tasks).
    pub targets: Vec<f32>,
}

impl Split {
    /// A split of `n` samples.
    pub fn new(x: Vec<f32>, y: Vec<i64>, n: usize) -> Split {
        Split {
            x,
            y,
            n,
            targets: vec![],
        }
    }

    /// A regression split: `n` samples with `targets.len() / n` real targets each.
    pub fn regression(x: Vec<f32>, targets: Vec<f32>, n: usize) -> Split {
        Split {
            x,
            y: vec![0; n],
            n,
            targets,
        }
    }
}

/// A ground-truth feature matrix (dictionary atoms, a planted signal, a teacher's weights):
/// `rows` vectors of length `dim`. The tracker records the cosine of every tracked weight
/// row whose length is `dim` with every row of it.
#[derive(Clone, Debug)]
pub struct GroundTruth {
    /// Archive keys use it: `align.<param>.<name>`.
    pub name: String,
    /// Number of feature vectors.
    pub rows: usize,
    /// Length of each vector (a tracked weight's input width).
    pub dim: usize,
    /// Row-major `[rows, dim]`.
    pub values: Vec<f32>,
}

impl GroundTruth {
    /// `rows` x `dim` values, row-major; errors when the count does not match.
    pub fn new(name: &str, rows: usize, dim: usize, values: Vec<f32>) -> Result<GroundTruth> {
        if values.len() != rows * dim {
            anyhow::bail!(
                "ground truth '{name}': {} values for {rows} x {dim}; pass rows x dim values, row-major",
                values.len()
            );
        }
        Ok(GroundTruth {
            name: name.to_string(),
            rows,
            dim,
            values,
        })
    }
}

/// Everything one run needs from its data source.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Shown in titles and the summary (`data` in `summary.json`).
    pub name: String,
    /// Shape of one sample, e.g. `[20]`, `[2, 400]` (patches x dim), `[1, 8, 8]` (image).
    pub sample_shape: Vec<usize>,
    /// What the labels mean.
    pub task: Task,
    /// Trained on.
    pub train: Split,
    /// Evaluated every `eval_every` epochs (may be empty: no evaluation).
    pub test: Split,
    /// Extra evaluation sets (e.g. anomalies), evaluated like `test` and reported by name.
    pub extra: Vec<(String, Split)>,
    /// Ground-truth features the tracker aligns tracked weights with.
    pub features: Vec<GroundTruth>,
    /// Online data (`data.online=true`): a fresh training set every epoch, in place of
    /// `train` from epoch 1 on.
    pub online: Option<Online>,
}

/// Draws epoch `e`'s training set (the same for the same `e`, so resuming repeats it).
#[derive(Clone)]
pub struct Online(pub std::sync::Arc<dyn Fn(usize) -> Split + Send + Sync>);

impl std::fmt::Debug for Online {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Online(fresh samples every epoch)")
    }
}

impl Dataset {
    /// A dataset from host arrays; `validate` runs on it before training.
    pub fn new(
        name: &str,
        sample_shape: &[usize],
        task: Task,
        train: Split,
        test: Split,
    ) -> Dataset {
        Dataset {
            name: name.to_string(),
            sample_shape: sample_shape.to_vec(),
            task,
            train,
            test,
            extra: vec![],
            online: None,
            features: vec![],
        }
    }

    /// Adds ground-truth features to align tracked weights with.
    pub fn with_ground_truth(mut self, g: GroundTruth) -> Dataset {
        self.features.push(g);
        self
    }

    /// Sizes agree (`x` holds `n` samples of the sample shape, `y` holds `n` labels), labels
    /// are in range for the task, and inputs are finite; `what` names the source in errors.
    pub fn validate(&self, what: &str) -> Result<()> {
        let f = self.features();
        let splits = [("train", &self.train), ("test", &self.test)]
            .into_iter()
            .chain(self.extra.iter().map(|(n, s)| (n.as_str(), s)));
        for (name, s) in splits {
            if s.x.len() != s.n * f || s.y.len() != s.n {
                anyhow::bail!(
                    "{what}: the {name} split has n={} but {} input values and {} labels; \
                     expected n x {f} values (sample shape {:?}) and n labels",
                    s.n,
                    s.x.len(),
                    s.y.len(),
                    self.sample_shape
                );
            }
            if let Task::Regress { outputs } = self.task {
                if s.targets.len() != s.n * outputs {
                    anyhow::bail!(
                        "{what}: the {name} split has n={} but {} targets; expected n x {outputs}",
                        s.n,
                        s.targets.len()
                    );
                }
                if let Some(bad) = s.targets.iter().find(|v| !v.is_finite()) {
                    anyhow::bail!(
                        "{what}: the {name} targets hold {bad}; every target must be finite"
                    );
                }
            }
            let top = match self.task {
                Task::Classify { classes } => classes as i64,
                Task::Binary => 2,
                Task::Reconstruct | Task::Regress { .. } => i64::MAX,
            };
            if let Some(bad) = s.y.iter().find(|&&v| v < 0 || v >= top) {
                anyhow::bail!(
                    "{what}: the {name} labels hold {bad}, outside 0..{} for task {:?}; \
                     renumber them first, e.g. `y = np.unique(y, return_inverse=True)[1]`",
                    top - 1,
                    self.task
                );
            }
        }
        if self.train.n == 0 {
            anyhow::bail!("{what}: the train split is empty");
        }
        self.check_finite()
    }

    /// Values per sample (the flattened sample shape).
    pub fn features(&self) -> usize {
        self.sample_shape.iter().product()
    }
}

/// What the user asked for, as plain values (parsed from the `data` config node).
#[derive(Clone, Debug)]
pub enum DataSpec {
    GaussianMixture {
        dim: usize,
        classes: usize,
        n_train: usize,
        n_test: usize,
        noise: f64,
    },
    Xor {
        dim: usize,
        n_train: usize,
        n_test: usize,
        noise: f64,
    },
    SignalNoise {
        patches: usize,
        dim: usize,
        n_train: usize,
        n_test: usize,
        snr: f64,
        sigma_p: f64,
        flip: f64,
    },
    SparseCoding {
        dim: usize,
        atoms: usize,
        k: usize,
        sigma: f64,
        n_train: usize,
        n_test: usize,
    },
    OrthonormalPatches {
        patches: usize,
        n_train: usize,
        n_test: usize,
        noise: f64,
    },
    ModularAddition {
        p: usize,
        frac_train: f64,
    },
    /// `y = W* x` with `W*`'s singular values given (whitened training inputs).
    LinearTeacher {
        dim: usize,
        outputs: usize,
        singular_values: Vec<f64>,
        n_train: usize,
        n_test: usize,
    },
    /// `y = g(Uᵀx) + noise` on Gaussian inputs, `U` `k` directions (multi-index regression).
    MultiIndex {
        dim: usize,
        k: usize,
        link: Link,
        random_directions: bool,
        noise: f64,
        n_train: usize,
        n_test: usize,
    },
    /// `k`-sparse parity on `{±1}^dim`; `online`: fresh training samples every epoch.
    SparseParity {
        dim: usize,
        k: usize,
        n_train: usize,
        n_test: usize,
        online: bool,
    },
    Digits {
        test_fraction: f64,
    },
    /// MNIST, Fashion-MNIST or CIFAR-10: from `path`, or downloaded into the cache.
    Named {
        set: named::Named,
        path: Option<String>,
        remote: download::Remote,
        n_train: Option<usize>,
        n_test: Option<usize>,
    },
    Numpy {
        path: String,
        x_key: String,
        y_key: String,
        test_path: Option<String>,
        test_fraction: f64,
        task: Option<String>,
        labels: LabelOptions,
    },
    /// A CSV table: `target` column(s), `columns` (default: the rest) as inputs.
    Csv {
        path: String,
        target: Vec<String>,
        columns: Option<Vec<String>>,
        test_path: Option<String>,
        test_fraction: f64,
        task: Option<String>,
        labels: LabelOptions,
    },
}

/// A multi-index teacher's link `g(z₁, …, z_k)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Link {
    /// `|z₁| − |z₂| + |z₃| − …` (Chizat & Bach 2019 with k = 2).
    AbsDiff,
    /// `z₁ z₂ ⋯ z_k`.
    Product,
    /// `Σ relu(zᵢ)`.
    ReluSum,
    /// `Σ tanh(zᵢ)`.
    TanhSum,
}

impl Link {
    pub fn apply(self, z: &[f64]) -> f64 {
        match self {
            Link::AbsDiff => z
                .iter()
                .enumerate()
                .map(|(i, v)| if i % 2 == 0 { v.abs() } else { -v.abs() })
                .sum(),
            Link::Product => z.iter().product(),
            Link::ReluSum => z.iter().map(|v| v.max(0.0)).sum(),
            Link::TanhSum => z.iter().map(|v| v.tanh()).sum(),
        }
    }
}

/// A file source's label renumbering and ground-truth features.
#[derive(Clone, Debug, Default)]
pub struct LabelOptions {
    /// `data.remap_labels`: distinct label values in sorted order become 0..K-1.
    pub remap: bool,
    /// `data.features_path` (default: the data file) and `data.features_key`.
    pub features_path: Option<String>,
    pub features_key: Option<String>,
    /// `data.features_name`: the archive's `align.<param>.<name>`.
    pub features_name: String,
}

impl DataSpec {
    /// Sample shape and task known without generating or reading anything (synthetic
    /// sources), so model/data mismatches are caught before a run starts.
    pub fn shape_and_task(&self) -> Option<(Vec<usize>, Task)> {
        use DataSpec::*;
        Some(match *self {
            GaussianMixture { dim, classes, .. } => (vec![dim], Task::Classify { classes }),
            Xor { dim, .. } | SparseCoding { dim, .. } => (vec![dim], Task::Binary),
            SignalNoise { patches, dim, .. } => (vec![patches, dim], Task::Binary),
            OrthonormalPatches { patches, .. } => (
                vec![patches, (1.2 * patches as f64).floor() as usize],
                Task::Reconstruct,
            ),
            ModularAddition { p, .. } => (vec![p], Task::Classify { classes: p }),
            SparseParity { dim, .. } => (vec![dim], Task::Binary),
            LinearTeacher { dim, outputs, .. } => (vec![dim], Task::Regress { outputs }),
            MultiIndex { dim, .. } => (vec![dim], Task::Regress { outputs: 1 }),
            Digits { .. } => (vec![1, 8, 8], Task::Classify { classes: 10 }),
            Named { .. } | Numpy { .. } | Csv { .. } => return None,
        })
    }
}

impl DataSpec {
    /// How many samples generation will hold in memory (all splits), known without
    /// generating: the memory check runs on it. `None` for file sources (read them to know).
    pub fn samples(&self) -> Option<usize> {
        use DataSpec::*;
        Some(match *self {
            GaussianMixture {
                n_train, n_test, ..
            }
            | Xor {
                n_train, n_test, ..
            }
            | SignalNoise {
                n_train, n_test, ..
            }
            | SparseCoding {
                n_train, n_test, ..
            }
            | SparseParity {
                n_train, n_test, ..
            }
            | LinearTeacher {
                n_train, n_test, ..
            }
            | MultiIndex {
                n_train, n_test, ..
            } => n_train.saturating_add(n_test),
            // Test, semantic and non-semantic anomaly splits.
            OrthonormalPatches {
                n_train, n_test, ..
            } => n_train.saturating_add(n_test.saturating_mul(3)),
            // Every pair once, plus the true-test copy of the held-out ones.
            ModularAddition { p, .. } => p.saturating_mul(p).saturating_mul(2),
            Digits { .. } => 1797,
            Named { .. } | Numpy { .. } | Csv { .. } => return None,
        })
    }
}

/// Builds the dataset; `seed` drives every random draw (generation, split, ground truth).
pub fn load(spec: &DataSpec, seed: u64) -> Result<Dataset> {
    use DataSpec::*;
    let ds = match spec {
        GaussianMixture { .. } | Xor { .. } | SignalNoise { .. } | SparseCoding { .. } => {
            synthetic::generate(spec, seed)
        }
        OrthonormalPatches { .. }
        | ModularAddition { .. }
        | SparseParity { .. }
        | LinearTeacher { .. }
        | MultiIndex { .. } => synthetic::generate(spec, seed),
        Digits { .. } | Named { .. } | Numpy { .. } | Csv { .. } => files::load(spec, seed),
    }?;
    ds.check_finite()?;
    Ok(ds)
}

impl Dataset {
    /// NaN or infinite inputs would surface later as a diverged loss with a misleading hint
    /// about the learning rate; say what is wrong with the data instead.
    fn check_finite(&self) -> Result<()> {
        let f = self.features().max(1);
        let splits = [("train", &self.train), ("test", &self.test)]
            .into_iter()
            .chain(self.extra.iter().map(|(n, s)| (n.as_str(), s)));
        for (name, split) in splits {
            let bad = split.x.iter().filter(|v| !v.is_finite()).count();
            if let Some(i) = split.x.iter().position(|v| !v.is_finite()) {
                anyhow::bail!(
                    "data={}: the {name} inputs hold {bad} NaN or infinite value(s), the first at sample {}, \
                     feature {} ({}); clean the data first (e.g. drop those rows, or np.nan_to_num)",
                    self.name,
                    i / f,
                    i % f,
                    split.x[i]
                );
            }
        }
        Ok(())
    }
}
