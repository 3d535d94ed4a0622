//! Seeded generators for the data models of feature-learning theory papers. Each plants
//! ground-truth features and returns them with the data, as each paper defines its data model.

use super::{DataSpec, Dataset, GroundTruth, Split, Task};
use anyhow::{bail, Result};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

fn normal(rng: &mut StdRng) -> f32 {
    rng.sample::<f64, _>(StandardNormal) as f32
}

fn gaussian(rng: &mut StdRng, n: usize, std: f64) -> Vec<f32> {
    (0..n).map(|_| normal(rng) * std as f32).collect()
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|a| a * a).sum::<f32>().sqrt()
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = norm(&v).max(1e-12);
    v.iter_mut().for_each(|a| *a /= n);
    v
}

/// `n` orthonormal rows of length `dim` (n <= dim): Gram-Schmidt on Gaussian rows, i.e.
/// the Q factor of a QR decomposition of a Gaussian matrix (Haar-distributed).
pub fn orthonormal_rows(rng: &mut StdRng, n: usize, dim: usize) -> Vec<f32> {
    let mut rows: Vec<Vec<f64>> = Vec::with_capacity(n);
    while rows.len() < n {
        let mut v: Vec<f64> = (0..dim).map(|_| rng.sample(StandardNormal)).collect();
        // Two passes of modified Gram-Schmidt keep the rows orthogonal to f32 precision.
        for _ in 0..2 {
            for r in &rows {
                let d: f64 = v.iter().zip(r).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(r).for_each(|(a, b)| *a -= d * b);
            }
        }
        let nv = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if nv > 1e-8 {
            rows.push(v.into_iter().map(|a| a / nv).collect());
        }
    }
    rows.into_iter().flatten().map(|a| a as f32).collect()
}

fn labels_to_class(y: f32) -> i64 {
    i64::from(y > 0.0)
}

/// The data's own random stream. burn's CPU backend seeds its generator from the same
/// `seed` the same way, so using `seed` directly would draw the initial weights from the
/// very numbers that built the data (a weight row would start inside the atoms' span).
pub fn data_rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
}

/// The values a generator cannot work with, found without generating anything (so a sweep's
/// preflight checks every job without drawing its data).
pub fn check(spec: &DataSpec) -> Result<()> {
    match *spec {
        DataSpec::GaussianMixture { classes, .. } if classes < 2 => {
            bail!("data.classes: a mixture needs at least 2 classes, got {classes}")
        }
        DataSpec::Xor { dim, .. } if dim < 2 => bail!("data.dim: xor needs dim >= 2, got {dim}"),
        DataSpec::SignalNoise { patches, .. } if patches < 2 => bail!(
            "data.patches: the signal-noise model needs at least 2 patches (signal + noise), got {patches}"
        ),
        DataSpec::SparseCoding { k, atoms, .. } if k == 0 || k > atoms => bail!(
            "data.k: the sparsity must be between 1 and data.atoms ({atoms}), got {k}"
        ),
        DataSpec::OrthonormalPatches { patches, .. } if patches < 2 => {
            bail!("data.patches: orthonormal_patches needs at least 2 patches, got {patches}")
        }
        DataSpec::LinearTeacher {
            dim,
            outputs,
            ref singular_values,
            n_train,
            ..
        } if singular_values.is_empty() || singular_values.len() > dim.min(outputs) || n_train < dim => bail!(
            "data.singular_values: a teacher of {outputs} x {dim} has 1 to {} modes, got {}; \
             and whitening needs data.n_train >= data.dim ({dim}), got {n_train}",
            dim.min(outputs),
            singular_values.len()
        ),
        DataSpec::MultiIndex { dim, k, .. } if k == 0 || k > dim => bail!(
            "data.k: the teacher's number of directions must be between 1 and data.dim ({dim}), got {k}"
        ),
        DataSpec::SparseParity { dim, k, .. } if k == 0 || k > dim => bail!(
            "data.k: the parity's order must be between 1 and data.dim ({dim}), got {k}"
        ),
        DataSpec::ModularAddition { p, .. } if p < 2 => {
            bail!("data.p: the modulus must be at least 2, got {p}")
        }
        _ => Ok(()),
    }
}

pub fn generate(spec: &DataSpec, seed: u64) -> Result<Dataset> {
    check(spec)?;
    let rng = data_rng(seed);
    match *spec {
        DataSpec::GaussianMixture {
            dim,
            classes,
            n_train,
            n_test,
            noise,
        } => gaussian_mixture(rng, dim, classes, n_train, n_test, noise),
        DataSpec::Xor {
            dim,
            n_train,
            n_test,
            noise,
        } => xor(rng, dim, n_train, n_test, noise),
        DataSpec::SignalNoise {
            patches,
            dim,
            n_train,
            n_test,
            snr,
            sigma_p,
            flip,
        } => signal_noise(rng, patches, dim, n_train, n_test, snr, sigma_p, flip),
        DataSpec::SparseCoding {
            dim,
            atoms,
            k,
            sigma,
            n_train,
            n_test,
        } => sparse_coding(rng, dim, atoms, k, sigma, n_train, n_test),
        DataSpec::OrthonormalPatches {
            patches,
            n_train,
            n_test,
            noise,
        } => orthonormal_patches(rng, patches, n_train, n_test, noise),
        DataSpec::ModularAddition { p, frac_train } => modular_addition(rng, p, frac_train),
        DataSpec::SparseParity {
            dim,
            k,
            n_train,
            n_test,
            online,
        } => sparse_parity(rng, seed, dim, k, n_train, n_test, online),
        DataSpec::LinearTeacher {
            dim,
            outputs,
            ref singular_values,
            n_train,
            n_test,
        } => linear_teacher(rng, dim, outputs, singular_values, n_train, n_test),
        DataSpec::MultiIndex {
            dim,
            k,
            link,
            random_directions,
            noise,
            n_train,
            n_test,
        } => multi_index(rng, dim, k, link, random_directions, noise, n_train, n_test),
        _ => bail!("not a synthetic data source"),
    }
}

/// `classes` Gaussian clusters around random means (the ground truth).
fn gaussian_mixture(
    mut rng: StdRng,
    dim: usize,
    classes: usize,
    n_train: usize,
    n_test: usize,
    noise: f64,
) -> Result<Dataset> {
    let means: Vec<Vec<f32>> = (0..classes).map(|_| gaussian(&mut rng, dim, 1.0)).collect();
    let mut draw = |n: usize| {
        let mut x = Vec::with_capacity(n * dim);
        let mut y = Vec::with_capacity(n);
        for _ in 0..n {
            let c = rng.random_range(0..classes);
            x.extend(means[c].iter().map(|m| m + normal(&mut rng) * noise as f32));
            y.push(c as i64);
        }
        Split::new(x, y, n)
    };
    let (train, test) = (draw(n_train), draw(n_test));
    let feats = means.iter().flat_map(|m| unit(m.clone())).collect();
    Ok(Dataset {
        name: "gaussian_mixture".into(),
        sample_shape: vec![dim],
        task: Task::Classify { classes },
        train,
        test,
        extra: vec![],
        online: None,
        features: vec![GroundTruth {
            name: "means".into(),
            rows: classes,
            dim,
            values: feats,
        }],
    })
}

/// Four clusters at (+-1, +-1, 0, ...) labelled by the sign of x1 x2.
fn xor(mut rng: StdRng, dim: usize, n_train: usize, n_test: usize, noise: f64) -> Result<Dataset> {
    let mut draw = |n: usize| {
        let mut x = Vec::with_capacity(n * dim);
        let mut y = Vec::with_capacity(n);
        for _ in 0..n {
            let (s1, s2) = (
                if rng.random::<bool>() { 1.0 } else { -1.0 },
                if rng.random::<bool>() { 1.0 } else { -1.0 },
            );
            for j in 0..dim {
                let c = match j {
                    0 => s1,
                    1 => s2,
                    _ => 0.0,
                };
                x.push(c + normal(&mut rng) * noise as f32);
            }
            y.push(labels_to_class(s1 * s2));
        }
        Split::new(x, y, n)
    };
    let (train, test) = (draw(n_train), draw(n_test));
    let mut e = vec![0.0; 2 * dim];
    e[0] = 1.0;
    e[dim + 1] = 1.0;
    Ok(Dataset {
        name: "xor".into(),
        sample_shape: vec![dim],
        task: Task::Binary,
        train,
        test,
        extra: vec![],
        online: None,
        features: vec![GroundTruth {
            name: "axes".into(),
            rows: 2,
            dim,
            values: e,
        }],
    })
}

/// Patches [y mu, xi, ...]: the signal mu (ground truth) and Gaussian noise orthogonal to it
/// (the benign-overfitting papers); the first noise patches of the training set are kept too.
#[allow(clippy::too_many_arguments)]
fn signal_noise(
    mut rng: StdRng,
    patches: usize,
    dim: usize,
    n_train: usize,
    n_test: usize,
    snr: f64,
    sigma_p: f64,
    flip: f64,
) -> Result<Dataset> {
    // mu = SNR * sigma_p * sqrt(d) * e_1; noise has its e_1 component removed.
    let mu_norm = (snr * sigma_p * (dim as f64).sqrt()) as f32;
    let mut noise_rows = Vec::with_capacity(n_train * dim);
    let mut draw = |n: usize, keep: &mut Option<&mut Vec<f32>>| {
        let mut x = Vec::with_capacity(n * patches * dim);
        let mut y = Vec::with_capacity(n);
        for _ in 0..n {
            let yi: f32 = if rng.random::<bool>() { 1.0 } else { -1.0 };
            let mut signal = vec![0.0; dim];
            signal[0] = yi * mu_norm;
            x.extend_from_slice(&signal);
            for p in 1..patches {
                let mut xi = gaussian(&mut rng, dim, sigma_p);
                xi[0] = 0.0;
                if p == 1 {
                    if let Some(k) = keep.as_mut() {
                        k.extend(unit(xi.clone()));
                    }
                }
                x.extend_from_slice(&xi);
            }
            let observed = if rng.random::<f64>() < flip { -yi } else { yi };
            y.push(labels_to_class(observed));
        }
        Split::new(x, y, n)
    };
    let train = draw(n_train, &mut Some(&mut noise_rows));
    let test = draw(n_test, &mut None);
    let mut signal = vec![0.0; dim];
    signal[0] = 1.0;
    Ok(Dataset {
        name: "signal_noise".into(),
        sample_shape: vec![patches, dim],
        task: Task::Binary,
        train,
        test,
        extra: vec![],
        online: None,
        features: vec![
            GroundTruth {
                name: "signal".into(),
                rows: 1,
                dim,
                values: signal,
            },
            GroundTruth {
                name: "noise".into(),
                rows: n_train,
                dim,
                values: noise_rows,
            },
        ],
    })
}

/// Sparse combinations of `k` of `atoms` dictionary atoms (the ground truth).
fn sparse_coding(
    mut rng: StdRng,
    dim: usize,
    atoms: usize,
    k: usize,
    sigma: f64,
    n_train: usize,
    n_test: usize,
) -> Result<Dataset> {
    // Atom j is row j (length dim): orthonormal when atoms == dim, else random unit rows.
    let m: Vec<f32> = if atoms <= dim {
        orthonormal_rows(&mut rng, atoms, dim)
    } else {
        (0..atoms)
            .flat_map(|_| unit(gaussian(&mut rng, dim, 1.0)))
            .collect()
    };
    let w_star: Vec<f32> = (0..atoms)
        .map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 })
        .collect();
    let idx: Vec<usize> = (0..atoms).collect();
    let mut draw = |n: usize| {
        let mut x = Vec::with_capacity(n * dim);
        let mut y = Vec::with_capacity(n);
        for _ in 0..n {
            let support: Vec<usize> = idx.sample(&mut rng, k).copied().collect();
            let mut xi = gaussian(&mut rng, dim, sigma);
            let mut score = 0.0;
            for &j in &support {
                let z = if rng.random::<bool>() { 1.0 } else { -1.0 };
                score += z * w_star[j];
                let atom = &m[j * dim..(j + 1) * dim];
                xi.iter_mut().zip(atom).for_each(|(a, b)| *a += z * b);
            }
            x.extend_from_slice(&xi);
            y.push(labels_to_class(if score == 0.0 { 1.0 } else { score }));
        }
        Split::new(x, y, n)
    };
    let (train, test) = (draw(n_train), draw(n_test));
    let mut dense = vec![0.0f32; dim];
    for (j, w) in w_star.iter().enumerate() {
        dense
            .iter_mut()
            .zip(&m[j * dim..(j + 1) * dim])
            .for_each(|(a, b)| *a += w * b);
    }
    Ok(Dataset {
        name: "sparse_coding".into(),
        sample_shape: vec![dim],
        task: Task::Binary,
        train,
        test,
        extra: vec![],
        online: None,
        features: vec![
            GroundTruth {
                name: "atoms".into(),
                rows: atoms,
                dim,
                values: m,
            },
            GroundTruth {
                name: "dense".into(),
                rows: 1,
                dim,
                values: unit(dense),
            },
        ],
    })
}

/// Patches of an orthonormal dictionary, with anomaly splits (the convolutional-autoencoder paper).
fn orthonormal_patches(
    mut rng: StdRng,
    patches: usize,
    n_train: usize,
    n_test: usize,
    noise: f64,
) -> Result<Dataset> {
    // Ratios of the CAE paper: d = 1.2 P, half the patches normal, 10% replaced.
    let d = (1.2 * patches as f64).floor() as usize;
    let nnf = patches / 2;
    let nrp = (0.1 * patches as f64).ceil() as usize;
    let f = orthonormal_rows(&mut rng, d, d);
    let beta: Vec<f64> = (0..d)
        .map(|j| if j < nnf { 0.0 } else { rng.random::<f64>() })
        .collect();
    let total: f64 = beta.iter().sum();
    let aux = |rng: &mut StdRng| {
        let mut u = rng.random::<f64>() * total;
        for (j, b) in beta.iter().enumerate() {
            if u < *b {
                return j;
            }
            u -= b;
        }
        d - 1
    };
    let row = |j: usize| &f[j * d..(j + 1) * d];
    // kind 0 = normal, 1 = semantic anomaly, 2 = non-semantic anomaly.
    let mut draw = |n: usize, kind: u8| {
        let mut x = Vec::with_capacity(n * patches * d);
        for _ in 0..n {
            for p in 0..patches {
                let replaced = p < nrp && kind != 0;
                let base: Vec<f32> = if replaced && kind == 2 {
                    gaussian(&mut rng, d, 1.0)
                } else if replaced || p >= nnf {
                    let j = aux(&mut rng);
                    row(j).to_vec()
                } else {
                    row(p).to_vec()
                };
                x.extend(base.iter().map(|v| v + normal(&mut rng) * noise as f32));
            }
        }
        Split::new(x, vec![i64::from(kind != 0); n], n)
    };
    let train = draw(n_train, 0);
    let test = draw(n_test, 0);
    let semantic = draw(n_test, 1);
    let non_semantic = draw(n_test, 2);
    Ok(Dataset {
        name: "orthonormal_patches".into(),
        sample_shape: vec![patches, d],
        task: Task::Reconstruct,
        train,
        test,
        extra: vec![
            ("semantic".into(), semantic),
            ("non_semantic".into(), non_semantic),
        ],
        features: vec![
            GroundTruth {
                name: "features".into(),
                rows: d,
                dim: d,
                values: f.clone(),
            },
            GroundTruth {
                name: "normal".into(),
                rows: nnf,
                dim: d,
                values: f[..nnf * d].to_vec(),
            },
        ],
        online: None,
    })
}

/// x uniform on {±1}^dim, label the product of k fixed coordinates (Barak et al. 2022's
/// sparse parity); the ground truth is those coordinates' axes. `online`: each epoch draws
/// a fresh training set, so no sample is seen twice.
fn sparse_parity(
    mut rng: StdRng,
    seed: u64,
    dim: usize,
    k: usize,
    n_train: usize,
    n_test: usize,
    online: bool,
) -> Result<Dataset> {
    let mut coords: Vec<usize> = (0..dim).collect();
    coords.shuffle(&mut rng);
    let mut coords = coords[..k].to_vec();
    coords.sort_unstable();
    let draw = {
        let coords = coords.clone();
        move |rng: &mut StdRng, n: usize| {
            let mut x = Vec::with_capacity(n * dim);
            let mut y = Vec::with_capacity(n);
            for _ in 0..n {
                let start = x.len();
                x.extend((0..dim).map(|_| if rng.random::<bool>() { 1.0f32 } else { -1.0 }));
                let prod: f32 = coords.iter().map(|&c| x[start + c]).product();
                y.push(labels_to_class(prod));
            }
            Split::new(x, y, n)
        }
    };
    let test = draw(&mut rng, n_test);
    // Epoch e's training set comes from its own stream, so a resumed run sees the same one.
    let epoch_rng = move |e: usize| data_rng(seed ^ ((e as u64 + 1) << 32) ^ 0x5EED);
    let train = if online {
        draw(&mut epoch_rng(0), n_train)
    } else {
        draw(&mut rng, n_train)
    };
    let mut axes = vec![0.0; k * dim];
    for (i, &c) in coords.iter().enumerate() {
        axes[i * dim + c] = 1.0;
    }
    Ok(Dataset {
        name: "sparse_parity".into(),
        sample_shape: vec![dim],
        task: Task::Binary,
        train,
        test,
        extra: vec![],
        features: vec![GroundTruth {
            name: "relevant".into(),
            rows: k,
            dim,
            values: axes,
        }],
        online: online.then(|| {
            super::Online(std::sync::Arc::new(move |e| {
                draw(&mut epoch_rng(e), n_train)
            }))
        }),
    })
}

/// A multi-index teacher `y = g(Uᵀx) + noise` on `x ~ N(0, I_dim)`: the target depends on
/// `k` directions only (Chizat & Bach 2019's `|x₁| − |x₂|`). Ground truth: `directions`
/// (the `k` unit vectors, coordinate axes or random orthonormal).
#[allow(clippy::too_many_arguments)]
fn multi_index(
    mut rng: StdRng,
    dim: usize,
    k: usize,
    link: super::Link,
    random_directions: bool,
    noise: f64,
    n_train: usize,
    n_test: usize,
) -> Result<Dataset> {
    // Rows of U [k, dim].
    let u: Vec<f64> = if random_directions {
        let mut cols: Vec<f64> = (0..dim * k)
            .map(|_| rng.sample::<f64, _>(StandardNormal))
            .collect();
        orthonormal_columns(&mut cols, dim, k);
        (0..k)
            .flat_map(|r| (0..dim).map(move |i| (r, i)))
            .map(|(r, i)| cols[i * k + r])
            .collect()
    } else {
        (0..k * dim)
            .map(|j| if j % dim == j / dim { 1.0 } else { 0.0 })
            .collect()
    };
    let mut draw = |n: usize| {
        let x: Vec<f64> = (0..n * dim)
            .map(|_| rng.sample::<f64, _>(StandardNormal))
            .collect();
        let y: Vec<f32> = (0..n)
            .map(|s| {
                let z: Vec<f64> = (0..k)
                    .map(|r| (0..dim).map(|i| u[r * dim + i] * x[s * dim + i]).sum())
                    .collect();
                (link.apply(&z) + noise * rng.sample::<f64, _>(StandardNormal)) as f32
            })
            .collect();
        Split::regression(x.iter().map(|&v| v as f32).collect(), y, n)
    };
    let (train, test) = (draw(n_train), draw(n_test));
    Ok(Dataset {
        name: "multi_index".into(),
        sample_shape: vec![dim],
        task: Task::Regress { outputs: 1 },
        train,
        test,
        extra: vec![],
        online: None,
        features: vec![GroundTruth::new(
            "directions",
            k,
            dim,
            u.iter().map(|&v| v as f32).collect(),
        )?],
    })
}

/// Orthonormalises the columns of a row-major `[rows, cols]` matrix in place (modified
/// Gram-Schmidt; `rows >= cols`), returning the norms removed (R's diagonal).
fn orthonormal_columns(a: &mut [f64], rows: usize, cols: usize) {
    for j in 0..cols {
        for k in 0..j {
            let dot: f64 = (0..rows).map(|i| a[i * cols + j] * a[i * cols + k]).sum();
            for i in 0..rows {
                a[i * cols + j] -= dot * a[i * cols + k];
            }
        }
        let norm = (0..rows)
            .map(|i| a[i * cols + j].powi(2))
            .sum::<f64>()
            .sqrt()
            .max(1e-300);
        for i in 0..rows {
            a[i * cols + j] /= norm;
        }
    }
}

/// A low-rank linear teacher `y = W* x`, `W* = Σᵢ sᵢ uᵢ vᵢᵀ` with random orthonormal
/// `uᵢ`, `vᵢ` (Saxe, McClelland & Ganguli 2014). The training inputs are whitened exactly
/// (`XᵀX / n = I`), so gradient descent on each mode runs independently. Ground truth:
/// `input_modes` (the `vᵢ`), `output_modes` (the `uᵢ`), `singular_values` (`[k, 1]`).
fn linear_teacher(
    mut rng: StdRng,
    dim: usize,
    outputs: usize,
    singular_values: &[f64],
    n_train: usize,
    n_test: usize,
) -> Result<Dataset> {
    let k = singular_values.len();
    let mut random = |rows: usize, cols: usize| -> Vec<f64> {
        (0..rows * cols)
            .map(|_| rng.sample::<f64, _>(StandardNormal))
            .collect()
    };
    // Columns of V [dim, k] and U [outputs, k].
    let mut v = random(dim, k);
    orthonormal_columns(&mut v, dim, k);
    let mut u = random(outputs, k);
    orthonormal_columns(&mut u, outputs, k);
    let teach = |x: &[f64], n: usize| -> Vec<f32> {
        let mut y = vec![0.0f32; n * outputs];
        for s in 0..n {
            let xs = &x[s * dim..(s + 1) * dim];
            for (m, &sv) in singular_values.iter().enumerate() {
                let proj: f64 = (0..dim).map(|i| v[i * k + m] * xs[i]).sum::<f64>() * sv;
                for o in 0..outputs {
                    y[s * outputs + o] += (proj * u[o * k + m]) as f32;
                }
            }
        }
        y
    };
    // Whitened training inputs: sqrt(n) times the orthonormalised columns of a Gaussian X.
    let mut xtr = random(n_train, dim);
    orthonormal_columns(&mut xtr, n_train, dim);
    let scale = (n_train as f64).sqrt();
    xtr.iter_mut().for_each(|v| *v *= scale);
    let xte = random(n_test, dim);
    let split = |x: &[f64], n: usize| {
        Split::regression(x.iter().map(|&v| v as f32).collect(), teach(x, n), n)
    };
    let (train, test) = (split(&xtr, n_train), split(&xte, n_test));
    let rows_of = |m: &[f64], len: usize| -> Vec<f32> {
        (0..k)
            .flat_map(|r| (0..len).map(move |i| m[i * k + r] as f32))
            .collect()
    };
    Ok(Dataset {
        name: "linear_teacher".into(),
        sample_shape: vec![dim],
        task: Task::Regress { outputs },
        train,
        test,
        extra: vec![],
        online: None,
        features: vec![
            GroundTruth::new("input_modes", k, dim, rows_of(&v, dim))?,
            GroundTruth::new("output_modes", k, outputs, rows_of(&u, outputs))?,
            GroundTruth::new(
                "singular_values",
                k,
                1,
                singular_values.iter().map(|&s| s as f32).collect(),
            )?,
        ],
    })
}

/// Inputs e_a + e_b labelled (a + b) mod p, the Fourier basis of Z_p as ground truth (grokking).
fn modular_addition(mut rng: StdRng, p: usize, frac_train: f64) -> Result<Dataset> {
    let mut pairs: Vec<(usize, usize)> = (0..p).flat_map(|a| (0..p).map(move |b| (a, b))).collect();
    pairs.shuffle(&mut rng);
    let n_train = ((frac_train * (p * p) as f64).floor() as usize).clamp(1, p * p - 1);
    let encode = |set: &[(usize, usize)]| {
        let mut x = vec![0.0f32; set.len() * p];
        for (i, &(a, b)) in set.iter().enumerate() {
            x[i * p + a] += 1.0;
            x[i * p + b] += 1.0;
        }
        let y = set.iter().map(|&(a, b)| ((a + b) % p) as i64).collect();
        Split::new(x, y, set.len())
    };
    let (tr, te) = pairs.split_at(n_train);
    let in_train: std::collections::HashSet<(usize, usize)> = tr.iter().copied().collect();
    let true_test: Vec<(usize, usize)> = te
        .iter()
        .copied()
        .filter(|&(a, b)| !in_train.contains(&(b, a)))
        .collect();
    // Real Fourier basis of Z_p: constant, then cos/sin pairs, each unit norm.
    let mut basis = Vec::with_capacity(p * p);
    basis.extend(std::iter::repeat_n(1.0 / (p as f32).sqrt(), p));
    for k in 1..=(p - 1) / 2 {
        for trig in [f64::cos, f64::sin] {
            let r: Vec<f32> = (0..p)
                .map(|x| trig(2.0 * std::f64::consts::PI * (k * x) as f64 / p as f64) as f32)
                .collect();
            basis.extend(unit(r));
        }
    }
    let rows = basis.len() / p;
    let mut extra = vec![];
    if !true_test.is_empty() {
        extra.push(("true_test".to_string(), encode(&true_test)));
    }
    Ok(Dataset {
        name: "modular_addition".into(),
        sample_shape: vec![p],
        task: Task::Classify { classes: p },
        train: encode(tr),
        test: encode(te),
        extra,
        online: None,
        features: vec![GroundTruth {
            name: "fourier".into(),
            rows,
            dim: p,
            values: basis,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orthonormal_rows_are_orthonormal() {
        let mut rng = StdRng::seed_from_u64(3);
        let q = orthonormal_rows(&mut rng, 16, 16);
        for i in 0..16 {
            for j in 0..16 {
                let d: f32 = (0..16).map(|k| q[i * 16 + k] * q[j * 16 + k]).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((d - want).abs() < 1e-5, "<q{i}, q{j}> = {d}");
            }
        }
    }

    #[test]
    fn sparse_coding_labels_follow_the_planted_rule() {
        let spec = DataSpec::SparseCoding {
            dim: 16,
            atoms: 16,
            k: 3,
            sigma: 0.0,
            n_train: 50,
            n_test: 10,
        };
        let d = generate(&spec, 1).unwrap();
        let atoms = &d.features[0].values;
        let dense = &d.features[1].values;
        // Without noise the code is recovered exactly by projecting on the atoms,
        // and the label is the sign of <w*, z> = sqrt(D) <u, x>.
        for i in 0..50 {
            let x = &d.train.x[i * 16..(i + 1) * 16];
            let nz = (0..16)
                .filter(|j| {
                    let c: f32 = (0..16).map(|k| atoms[j * 16 + k] * x[k]).sum();
                    c.abs() > 0.5
                })
                .count();
            assert_eq!(nz, 3);
            let s: f32 = x.iter().zip(dense).map(|(a, b)| a * b).sum();
            assert_eq!(d.train.y[i], i64::from(s > 0.0));
        }
    }

    #[test]
    fn generators_are_seeded() {
        let spec = DataSpec::SignalNoise {
            patches: 2,
            dim: 10,
            n_train: 5,
            n_test: 5,
            snr: 1.0,
            sigma_p: 1.0,
            flip: 0.0,
        };
        let (a, b, c) = (
            generate(&spec, 7).unwrap(),
            generate(&spec, 7).unwrap(),
            generate(&spec, 8).unwrap(),
        );
        assert_eq!(a.train.x, b.train.x);
        assert_ne!(a.train.x, c.train.x);
    }
}
