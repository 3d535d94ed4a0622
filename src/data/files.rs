//! Real data from files: the bundled 8x8 digits, IDX files, and the user's
//! own `.npy`/`.npz` arrays. Every error names the file and what was wrong with it.

use super::{DataSpec, Dataset, Split, Task};
use anyhow::{anyhow, bail, Context, Result};
use rand::seq::SliceRandom;
use std::io::Read;
use std::path::Path;

static DIGITS_CSV_GZ: &[u8] = include_bytes!("digits/digits.csv.gz");

pub fn load(spec: &DataSpec, seed: u64) -> Result<Dataset> {
    match spec {
        DataSpec::Digits { test_fraction } => digits(*test_fraction, seed),
        DataSpec::Named {
            set,
            path,
            remote,
            n_train,
            n_test,
        } => super::named::load(*set, path.as_deref(), remote, *n_train, *n_test),
        DataSpec::Numpy {
            path,
            x_key,
            y_key,
            test_path,
            test_fraction,
            task,
            labels,
        } => numpy(
            &FileSource {
                kind: "numpy",
                path,
                y_key,
                test_path: test_path.as_deref(),
                test_fraction: *test_fraction,
                task: task.as_deref(),
                labels,
            },
            x_key,
            seed,
        ),
        DataSpec::Csv {
            path,
            target,
            columns,
            test_path,
            test_fraction,
            task,
            labels,
        } => csv_data(
            &FileSource {
                kind: "csv",
                path,
                y_key: &target.join(","),
                test_path: test_path.as_deref(),
                test_fraction: *test_fraction,
                task: task.as_deref(),
                labels,
            },
            target,
            columns.as_deref(),
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
        online: None,
        features: vec![],
    })
}

/// Reads an IDX file (raw or `.gz`), returning its dimensions and bytes as f32.
pub(crate) fn read_idx(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
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
         renumber them with data.remap_labels=true (distinct values in sorted order become \
         0..K-1), or first, e.g. `y = np.unique(y, return_inverse=True)[1]`",
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

/// Inputs with their shape, and labels (with their shape) if the file has them.
type Labelled = (Vec<usize>, Vec<f32>, Option<(Vec<usize>, Vec<f32>)>);

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

/// Where a file source's data and options are: shared by `data=numpy` and `data=csv`.
pub struct FileSource<'a> {
    /// `numpy` or `csv` (the dataset's name).
    pub kind: &'a str,
    pub path: &'a str,
    /// The label or target array / column(s), for messages.
    pub y_key: &'a str,
    pub test_path: Option<&'a str>,
    pub test_fraction: f64,
    pub task: Option<&'a str>,
    /// Label renumbering and ground-truth features.
    pub labels: &'a crate::data::LabelOptions,
}

/// A CSV table with a header: the `target` column(s) are the labels (or regression
/// targets), `columns` (default: every other column) the inputs. Every cell must be a number;
/// a bad one is named by file, line and column.
fn csv_data(
    src: &FileSource,
    target: &[String],
    columns: Option<&[String]>,
    seed: u64,
) -> Result<Dataset> {
    let get = |p: &str| -> Result<Labelled> {
        let mut r = ::csv::ReaderBuilder::new()
            .trim(::csv::Trim::All)
            .from_path(p)
            .with_context(|| format!("opening {p}"))?;
        let header: Vec<String> = r
            .headers()
            .with_context(|| format!("{p}: reading the header line"))?
            .iter()
            .map(String::from)
            .collect();
        let col = |name: &String, what: &str| -> Result<usize> {
            header.iter().position(|h| h == name).ok_or_else(|| {
                let hint =
                    crate::config::suggest::did_you_mean(name, header.iter().map(|h| h.as_str()))
                        .map(|s| format!(" Did you mean '{s}'?"))
                        .unwrap_or_default();
                anyhow!(
                    "{p}: no column '{name}' ({what}); the header has: {}.{hint}",
                    header.join(", ")
                )
            })
        };
        let ys: Vec<usize> = target
            .iter()
            .map(|t| col(t, "data.target"))
            .collect::<Result<_>>()?;
        let xs: Vec<usize> = match columns {
            Some(c) => c
                .iter()
                .map(|t| col(t, "data.columns"))
                .collect::<Result<_>>()?,
            None => (0..header.len()).filter(|i| !ys.contains(i)).collect(),
        };
        if xs.is_empty() {
            bail!(
                "{p}: no input columns left besides the target(s) {}",
                target.join(", ")
            );
        }
        let (mut x, mut y, mut n) = (vec![], vec![], 0usize);
        for (i, rec) in r.records().enumerate() {
            let rec = rec.with_context(|| format!("{p}: reading line {}", i + 2))?;
            let line = rec.position().map_or(i as u64 + 2, |pos| pos.line());
            let num = |c: usize| -> Result<f32> {
                let v = rec.get(c).unwrap_or("");
                v.parse::<f32>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .ok_or_else(|| {
                        anyhow!(
                            "{p}:{line}: column '{}': '{v}' is not a number (every cell of the \
                         inputs and targets must be; encode categories as numbers first)",
                            header[c]
                        )
                    })
            };
            for &c in &xs {
                x.push(num(c)?);
            }
            for &c in &ys {
                y.push(num(c)?);
            }
            n += 1;
        }
        let yshape = if ys.len() == 1 {
            vec![n]
        } else {
            vec![n, ys.len()]
        };
        Ok((vec![n, xs.len()], x, Some((yshape, y))))
    };
    labelled(src, "inputs", &get, seed)
}

fn numpy(src: &FileSource, x_key: &str, seed: u64) -> Result<Dataset> {
    let (y_key, task) = (src.y_key, src.task);
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
        Ok((
            x.1.clone(),
            x.2.clone(),
            y.map(|y| (y.1.clone(), y.2.clone())),
        ))
    };
    labelled(src, x_key, &get, seed)
}

/// A dataset from a file source's arrays (`get` reads one file): regression targets, or
/// labels checked (or renumbered) as class ids; the test split from `test_path` or split
/// off; ground-truth features if asked for.
fn labelled(
    src: &FileSource,
    x_key: &str,
    get: &dyn Fn(&str) -> Result<Labelled>,
    seed: u64,
) -> Result<Dataset> {
    let mut d = labelled_splits(src, x_key, get, seed)?;
    d.name = src.kind.to_string();
    if src.labels.features_path.is_some() || src.labels.features_key.is_some() {
        d.features.push(ground_truth(src, d.features())?);
    }
    Ok(d)
}

/// The ground-truth feature vectors `[F, dim]` (or one `[dim]`) named by `data.features_*`;
/// `dim` must be the samples' size, since alignment is with first-layer weight rows.
fn ground_truth(src: &FileSource, features: usize) -> Result<crate::data::GroundTruth> {
    let l = src.labels;
    let file = l.features_path.as_deref().unwrap_or(src.path);
    let arrays = read_arrays(Path::new(file))?;
    let names: Vec<&str> = arrays.iter().map(|a| a.0.as_str()).collect();
    let found = match l.features_key.as_deref() {
        Some(k) => arrays.iter().find(|a| a.0 == k).ok_or_else(|| {
            anyhow!(
                "{file}: no array '{k}' (data.features_key); the file holds: {}",
                names.join(", ")
            )
        })?,
        None if arrays.len() == 1 => &arrays[0],
        None => bail!(
            "{file}: holds {} arrays ({}); say which are the features with data.features_key",
            arrays.len(),
            names.join(", ")
        ),
    };
    let (rows, dim) = match found.1.as_slice() {
        [d] => (1, *d),
        [r, d] => (*r, *d),
        s => bail!(
            "{file}[{}]: ground-truth features must have shape [F, dim], got {s:?}",
            found.0
        ),
    };
    if dim != features {
        bail!(
            "{file}[{}]: features of length {dim}, but samples have {features} values; \
             alignment compares them with first-layer weight rows, which have {features}",
            found.0
        );
    }
    if rows == 0 || found.2.iter().any(|v| !v.is_finite()) {
        bail!(
            "{file}[{}]: the features must be non-empty and finite",
            found.0
        );
    }
    crate::data::GroundTruth::new(&l.features_name, rows, dim, found.2.clone())
}

fn labelled_splits(
    src: &FileSource,
    x_key: &str,
    get: &dyn Fn(&str) -> Result<Labelled>,
    seed: u64,
) -> Result<Dataset> {
    let (path, y_key, task) = (src.path, src.y_key, src.task);
    let (test_path, test_fraction) = (src.test_path, src.test_fraction);
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
    // The test file, read once and checked against the training samples' shape.
    let test_file = match test_path {
        Some(tp) => {
            let (tshape, tx, ty) = get(tp)?;
            if tshape.get(1..) != shape.get(1..) {
                bail!(
                    "{tp}: test samples have shape {:?}, training samples {:?}",
                    &tshape[1..],
                    &shape[1..]
                );
            }
            Some((tp, tshape[0], tx, ty))
        }
        None => None,
    };
    if task == Some("regression") {
        // Real targets `[n]` or `[n, outputs]`, as they are.
        let targets = |p: &str, y: Option<(Vec<usize>, Vec<f32>)>| -> Result<(usize, Vec<f32>)> {
            let (ys, yv) = y.ok_or_else(|| anyhow!("{p}: no targets '{y_key}' (data.y_key)"))?;
            let w = match ys.as_slice() {
                [_] => 1,
                [_, w] => *w,
                s => bail!(
                    "{p}: regression targets '{y_key}' must have shape [n] or [n, outputs], got {s:?}"
                ),
            };
            if let Some(v) = yv.iter().find(|v| !v.is_finite()) {
                bail!("{p}: regression targets '{y_key}' hold {v}; every target must be finite");
            }
            Ok((w, yv))
        };
        let (w, t) = targets(path, y)?;
        let (train, test) = match test_file {
            Some((tp, tn, tx, ty)) => {
                let (tw, tt) = targets(tp, ty)?;
                if tw != w {
                    bail!("{tp}: {tw} targets per sample, but the training file has {w}");
                }
                (Split::regression(x, t, n), Split::regression(tx, tt, tn))
            }
            None => {
                // The same seeded split as for labels, carrying the targets along.
                let ids: Vec<i64> = (0..n as i64).collect();
                let (a, b) = split(x, ids, n, test_fraction, seed);
                let pick = |s: Split| {
                    let tt: Vec<f32> =
                        s.y.iter()
                            .flat_map(|&i| t[i as usize * w..(i as usize + 1) * w].iter().copied())
                            .collect();
                    Split::regression(s.x, tt, s.n)
                };
                (pick(a), pick(b))
            }
        };
        return Ok(Dataset {
            name: "numpy".into(),
            sample_shape,
            task: Task::Regress { outputs: w },
            train,
            test,
            extra: vec![],
            online: None,
            features: vec![],
        });
    }
    let y = y.map(|y| y.1);
    // Labels of both splits, so they can be renumbered together.
    let test_file = test_file.map(|(_, tn, tx, ty)| (tn, tx, ty.map(|y| y.1)));
    let (y, test_file) = if src.labels.remap && task != Some("reconstruct") {
        let mut values: Vec<f32> = y
            .iter()
            .flatten()
            .chain(test_file.iter().flat_map(|t| t.2.iter().flatten()))
            .copied()
            .collect();
        values.sort_by(|a, b| a.total_cmp(b));
        values.dedup();
        let id = |v: &f32| values.binary_search_by(|x| x.total_cmp(v)).unwrap_or(0) as f32;
        (
            y.map(|y| y.iter().map(id).collect()),
            test_file.map(|(n, x, ty)| (n, x, ty.map(|y| y.iter().map(id).collect()))),
        )
    } else {
        (y, test_file)
    };
    let labels = |y: Option<Vec<f32>>, n: usize| -> Result<Vec<i64>> {
        match y {
            None => Ok(vec![0; n]),
            Some(y) => y
                .into_iter()
                .map(|v| {
                    if v.fract() != 0.0 || v < -1.0 {
                        bail!(
                            "{path}: labels '{y_key}' must be integers (class ids, or -1/+1), \
                             found {v}; real-valued targets need data.task=regression"
                        )
                    } else {
                        Ok(if v < 0.0 { 0 } else { v as i64 })
                    }
                })
                .collect(),
        }
    };
    let y = labels(y, n)?;
    let (train, test) = match test_file {
        Some((tn, tx, ty)) => (Split::new(x, y, n), Split::new(tx, labels(ty, tn)?, tn)),
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
            bail!("data.task: unknown '{other}'; expected classify, binary, regression or reconstruct")
        }
    };
    Ok(Dataset {
        name: "numpy".into(),
        sample_shape,
        task,
        train,
        test,
        extra: vec![],
        online: None,
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
