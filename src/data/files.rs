//! Real data from files: the bundled 8x8 digits, MNIST-style IDX files, and the user's
//! own `.npy`/`.npz` arrays. Every error names the file and what was wrong with it.

use super::{DataSpec, Dataset, Split, Task};
use anyhow::{anyhow, bail, Context, Result};
use rand::seq::SliceRandom;
use std::io::Read;
use std::path::{Path, PathBuf};

static DIGITS_CSV_GZ: &[u8] = include_bytes!("digits/digits.csv.gz");

pub fn load(spec: &DataSpec, seed: u64) -> Result<Dataset> {
    match spec {
        DataSpec::Digits { test_fraction } => digits(*test_fraction, seed),
        DataSpec::Mnist {
            path,
            n_train,
            n_test,
        } => mnist(Path::new(path), *n_train, *n_test),
        DataSpec::Numpy {
            path,
            x_key,
            y_key,
            test_path,
            test_fraction,
            task,
        } => numpy(
            path,
            x_key,
            y_key,
            test_path.as_deref(),
            *test_fraction,
            task.as_deref(),
            seed,
        ),
        _ => bail!("not a file data source"),
    }
}

/// Seeded shuffle, then the first `1 - test_fraction` for training.
fn split(x: Vec<f32>, y: Vec<i64>, n: usize, test_fraction: f64, seed: u64) -> (Split, Split) {
    let f = x.len() / n.max(1);
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut super::synthetic::data_rng(seed));
    let n_test = ((n as f64 * test_fraction).round() as usize).min(n.saturating_sub(1));
    let take = |ids: &[usize]| {
        let mut xs = Vec::with_capacity(ids.len() * f);
        let mut ys = Vec::with_capacity(ids.len());
        for &i in ids {
            xs.extend_from_slice(&x[i * f..(i + 1) * f]);
            ys.push(y[i]);
        }
        Split::new(xs, ys, ids.len())
    };
    let (te, tr) = idx.split_at(n_test);
    (take(tr), take(te))
}

fn digits(test_fraction: f64, seed: u64) -> Result<Dataset> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(DIGITS_CSV_GZ)
        .read_to_string(&mut text)
        .context("decoding the bundled digits data")?;
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let vals: Vec<f32> = line
            .split(',')
            .map(|v| v.trim().parse::<f32>().unwrap_or(0.0))
            .collect();
        let (px, label) = vals.split_at(64);
        x.extend(px.iter().map(|v| v / 16.0));
        y.push(label[0] as i64);
    }
    let n = y.len();
    let (train, test) = split(x, y, n, test_fraction, seed);
    Ok(Dataset {
        name: "digits".into(),
        sample_shape: vec![1, 8, 8],
        task: Task::Classify { classes: 10 },
        train,
        test,
        extra: vec![],
        features: vec![],
    })
}

/// Reads an IDX file (raw or `.gz`), returning its dimensions and bytes as f32.
fn read_idx(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse_idx(raw, path)
}

/// An IDX file's bytes (raw or gzipped), read from `path`, as dimensions and f32 values.
pub(crate) fn parse_idx(raw: Vec<u8>, path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .with_context(|| format!("{}: not a valid gzip file", path.display()))?;
        out
    } else {
        raw
    };
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 {
        bail!(
            "{}: not an IDX file of unsigned bytes (expected magic 0x0000080N as in MNIST's files)",
            path.display()
        );
    }
    let nd = bytes[3] as usize;
    if bytes.len() < 4 + 4 * nd {
        bail!("{}: truncated IDX header", path.display());
    }
    let dims: Vec<usize> = (0..nd)
        .map(|i| {
            let b = &bytes[4 + 4 * i..8 + 4 * i];
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
        })
        .collect();
    let total = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .with_context(|| {
            format!(
                "{}: the header's dimensions {dims:?} overflow",
                path.display()
            )
        })?;
    let body = &bytes[4 + 4 * nd..];
    if body.len() != total {
        bail!(
            "{}: the header says {:?} ({} values) but the file holds {} bytes of data",
            path.display(),
            dims,
            total,
            body.len()
        );
    }
    Ok((dims, body.iter().map(|&b| b as f32).collect()))
}

fn find(dir: &Path, stems: &[&str]) -> Result<PathBuf> {
    for s in stems {
        for ext in ["", ".gz"] {
            let p = dir.join(format!("{s}{ext}"));
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    bail!(
        "no file {} (or .gz) in {}: data=mnist expects the four IDX files as distributed \
         (train-images-idx3-ubyte.gz, ...); set data.path to their folder",
        stems[0],
        dir.display()
    )
}

fn mnist(dir: &Path, n_train: Option<usize>, n_test: Option<usize>) -> Result<Dataset> {
    if !dir.is_dir() {
        bail!(
            "data.path '{}' is not a directory; point it at the folder with MNIST's IDX files",
            dir.display()
        );
    }
    let load = |img: &str, lab: &str, limit: Option<usize>| -> Result<(Vec<usize>, Split)> {
        let (idims, px) = read_idx(&find(dir, &[img, &img.replace("-idx3-", ".idx3-")])?)?;
        let (ldims, labels) = read_idx(&find(dir, &[lab, &lab.replace("-idx1-", ".idx1-")])?)?;
        if idims.len() != 3 || ldims.len() != 1 || idims[0] != ldims[0] {
            bail!(
                "{}: images {:?} and labels {:?} do not match (expected [n, rows, cols] and [n])",
                dir.display(),
                idims,
                ldims
            );
        }
        let n = limit.unwrap_or(idims[0]).min(idims[0]);
        let f = idims[1] * idims[2];
        let x = px[..n * f].iter().map(|v| v / 255.0).collect();
        let y = labels[..n].iter().map(|&v| v as i64).collect();
        Ok((vec![1, idims[1], idims[2]], Split::new(x, y, n)))
    };
    let (shape, train) = load(
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        n_train,
    )?;
    let (_, test) = load("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", n_test)?;
    let classes = train.y.iter().chain(&test.y).copied().max().unwrap_or(0) as usize + 1;
    Ok(Dataset {
        name: "mnist".into(),
        sample_shape: shape,
        task: Task::Classify {
            classes: classes.max(2),
        },
        train,
        test,
        extra: vec![],
        features: vec![],
    })
}

/// Class ids must be 0..K-1: a stray large id (99000000) would silently become a K-row
/// output layer. Every id below the largest must occur.
fn check_class_ids(
    path: &str,
    y_key: &str,
    ids: impl Iterator<Item = i64>,
    max_label: usize,
) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for id in ids {
        seen.insert(id);
    }
    if seen.len() == max_label + 1 {
        return Ok(());
    }
    let shown: Vec<String> = seen.iter().take(8).map(|v| v.to_string()).collect();
    bail!(
        "{path}: labels '{y_key}' must be class ids 0..K-1, but they take {} distinct value(s) \
         ({}{}) with the largest {max_label}, which would make a {}-way output layer; \
         renumber them first, e.g. `y = np.unique(y, return_inverse=True)[1]`",
        seen.len(),
        shown.join(", "),
        if seen.len() > 8 { ", ..." } else { "" },
        max_label + 1
    )
}

/// One array from a `.npy` reader, as f32 with its shape.
pub fn npy_array(r: impl Read, what: &str) -> Result<(Vec<usize>, Vec<f32>)> {
    let f = npyz::NpyFile::new(r).with_context(|| format!("{what}: not a valid .npy array"))?;
    let shape: Vec<usize> = f.shape().iter().map(|&s| s as usize).collect();
    let dtype = f.dtype();
    let err = |e: std::io::Error| anyhow!("{what}: reading the data: {e}");
    macro_rules! try_as {
        ($f:expr, $($t:ty),*) => {{
            let f = $f;
            $(
                let f = match f.try_data::<$t>() {
                    Ok(d) => {
                        let v: Vec<f32> = d.collect::<std::io::Result<Vec<$t>>>().map_err(err)?.into_iter().map(|v| v as f32).collect();
                        return Ok((shape, v));
                    }
                    Err(f) => f,
                };
            )*
            drop(f);
        }};
    }
    try_as!(f, f32, f64, i64, i32, i16, i8, u8, u16, u32, u64);
    bail!(
        "{what}: unsupported dtype '{}'; use a float or integer array (object and string arrays cannot be trained on)",
        dtype.descr()
    )
}

/// All arrays of a `.npz` (or the single array of a `.npy`, named `arr_0`).
/// A named array: (name, shape, values as f32).
type Array = (String, Vec<usize>, Vec<f32>);

/// Inputs with their shape, and labels if the file has them.
type Labelled = (Vec<usize>, Vec<f32>, Option<Vec<f32>>);

pub(crate) fn read_arrays(path: &Path) -> Result<Vec<Array>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    if path.extension().and_then(|e| e.to_str()) == Some("npy") {
        let (s, v) = npy_array(std::io::BufReader::new(file), &path.display().to_string())?;
        return Ok(vec![("arr_0".into(), s, v)]);
    }
    let mut z = zip::ZipArchive::new(file)
        .with_context(|| format!("{}: not a .npz (zip) archive", path.display()))?;
    let mut out = Vec::new();
    for i in 0..z.len() {
        let entry = z.by_index(i)?;
        let name = entry.name().trim_end_matches(".npy").to_string();
        let what = format!("{}[{name}]", path.display());
        let (s, v) = npy_array(entry, &what)?;
        out.push((name, s, v));
    }
    Ok(out)
}

fn numpy(
    path: &str,
    x_key: &str,
    y_key: &str,
    test_path: Option<&str>,
    test_fraction: f64,
    task: Option<&str>,
    seed: u64,
) -> Result<Dataset> {
    let get = |p: &str| -> Result<Labelled> {
        let arrays = read_arrays(Path::new(p))?;
        let names: Vec<&str> = arrays.iter().map(|a| a.0.as_str()).collect();
        let pick = |k: &str| arrays.iter().find(|a| a.0 == k);
        let x = pick(x_key).ok_or_else(|| {
            anyhow!(
                "{p}: no array '{x_key}' (data.x_key); the file holds: {}",
                names.join(", ")
            )
        })?;
        let y = pick(y_key);
        if y.is_none() && task != Some("reconstruct") {
            bail!(
                "{p}: no array '{y_key}' (data.y_key); the file holds: {} (set data.task=reconstruct for unlabelled data)",
                names.join(", ")
            );
        }
        if let Some(y) = y {
            if y.1.first() != x.1.first() {
                bail!(
                    "{p}: '{x_key}' has shape {:?} but '{y_key}' has shape {:?}: they need the same first dimension",
                    x.1,
                    y.1
                );
            }
        }
        Ok((x.1.clone(), x.2.clone(), y.map(|y| y.2.clone())))
    };
    let (shape, x, y) = get(path)?;
    if shape.is_empty() || shape[0] == 0 {
        bail!("{path}: '{x_key}' must have shape [n, ...] with n >= 1, got {shape:?}");
    }
    let n = shape[0];
    let sample_shape: Vec<usize> = if shape.len() == 1 {
        vec![1]
    } else {
        shape[1..].to_vec()
    };
    let labels = |y: Option<Vec<f32>>, n: usize| -> Result<Vec<i64>> {
        match y {
            None => Ok(vec![0; n]),
            Some(y) => y
                .into_iter()
                .map(|v| {
                    if v.fract() != 0.0 || v < -1.0 {
                        bail!("{path}: labels '{y_key}' must be integers (class ids, or -1/+1), found {v}")
                    } else {
                        Ok(if v < 0.0 { 0 } else { v as i64 })
                    }
                })
                .collect(),
        }
    };
    let y = labels(y, n)?;
    let (train, test) = match test_path {
        Some(tp) => {
            let (tshape, tx, ty) = get(tp)?;
            if tshape.get(1..) != shape.get(1..) {
                bail!(
                    "{tp}: test samples have shape {:?}, training samples {:?}",
                    &tshape[1..],
                    &shape[1..]
                );
            }
            let tn = tshape[0];
            (Split::new(x, y, n), Split::new(tx, labels(ty, tn)?, tn))
        }
        None => split(x, y, n, test_fraction, seed),
    };
    let max_label = train.y.iter().chain(&test.y).copied().max().unwrap_or(0) as usize;
    if task != Some("reconstruct") {
        check_class_ids(
            path,
            y_key,
            train.y.iter().chain(&test.y).copied(),
            max_label,
        )?;
    }
    let task = match task {
        Some("reconstruct") => Task::Reconstruct,
        Some("binary") => Task::Binary,
        Some("classify") | None if max_label >= 2 => Task::Classify {
            classes: max_label + 1,
        },
        Some("classify") => Task::Classify { classes: 2 },
        None => Task::Binary,
        Some(other) => {
            bail!("data.task: unknown '{other}'; expected classify, binary or reconstruct")
        }
    };
    Ok(Dataset {
        name: "numpy".into(),
        sample_shape,
        task,
        train,
        test,
        extra: vec![],
        features: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_digits_load_and_split_by_seed() {
        let d = digits(0.25, 0).unwrap();
        assert_eq!(d.train.n + d.test.n, 1797);
        assert_eq!(d.test.n, 449);
        assert!(d.train.x.iter().all(|v| (0.0..=1.0).contains(v)));
        let e = digits(0.25, 1).unwrap();
        assert_ne!(d.test.y, e.test.y);
    }
}
