//! Datasets users expect by name: MNIST and Fashion-MNIST (IDX files) and CIFAR-10 (binary
//! batches), read from `data.path` or downloaded once into the cache.

use super::download::{self, Remote};
use super::files::read_idx;
use super::{Dataset, Split, Task};
use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Which named dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Named {
    Mnist,
    FashionMnist,
    Cifar10,
}

const IDX_FILES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];
const CIFAR_ARCHIVE: &str = "cifar-10-binary.tar.gz";
const CIFAR_DIR: &str = "cifar-10-batches-bin";
const CIFAR_TRAIN: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
const CIFAR_TEST: &str = "test_batch.bin";

impl Named {
    /// The `data.name` (and the cache folder's name).
    pub fn name(self) -> &'static str {
        match self {
            Named::Mnist => "mnist",
            Named::FashionMnist => "fashion_mnist",
            Named::Cifar10 => "cifar10",
        }
    }

    /// From a `data.name`, if it is one of these.
    pub fn parse(name: &str) -> Option<Named> {
        [Named::Mnist, Named::FashionMnist, Named::Cifar10]
            .into_iter()
            .find(|n| n.name() == name)
    }

    /// The files a download fetches.
    fn files(self) -> &'static [&'static str] {
        match self {
            Named::Mnist | Named::FashionMnist => &IDX_FILES,
            Named::Cifar10 => &[CIFAR_ARCHIVE],
        }
    }
}

/// Reads the dataset from `path`, or from the cache after downloading what is missing.
pub fn load(
    set: Named,
    path: Option<&str>,
    remote: &Remote,
    n_train: Option<usize>,
    n_test: Option<usize>,
) -> Result<Dataset> {
    let dir = match path {
        Some(p) => {
            let dir = PathBuf::from(p);
            if !dir.is_dir() {
                bail!(
                    "data.path '{}' is not a directory; point it at the folder with {}'s files \
                     ({}), or set data.path=null to download them",
                    dir.display(),
                    set.name(),
                    set.files().join(", ")
                );
            }
            dir
        }
        None => download::fetch(set.name(), set.files(), remote)?,
    };
    match set {
        Named::Mnist | Named::FashionMnist => idx_images(set.name(), &dir, n_train, n_test),
        Named::Cifar10 => {
            let bins = match path {
                Some(_) => cifar_folder(&dir)?,
                None => unpack_cifar(&dir)?,
            };
            cifar(&bins, n_train, n_test)
        }
    }
}

fn find(name: &str, dir: &Path, stems: &[&str]) -> Result<PathBuf> {
    for s in stems {
        for ext in ["", ".gz"] {
            let p = dir.join(format!("{s}{ext}"));
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    bail!(
        "no file {} (or .gz) in {}: data={name} expects the four IDX files as distributed \
         (train-images-idx3-ubyte.gz, ...); set data.path to their folder, or data.path=null \
         to download them",
        stems[0],
        dir.display()
    )
}

/// The four IDX files of MNIST or Fashion-MNIST (raw or gzipped), pixels scaled to [0, 1].
fn idx_images(
    name: &str,
    dir: &Path,
    n_train: Option<usize>,
    n_test: Option<usize>,
) -> Result<Dataset> {
    let load = |img: &str, lab: &str, limit: Option<usize>| -> Result<(Vec<usize>, Split)> {
        let (idims, px) = read_idx(&find(name, dir, &[img, &img.replace("-idx3-", ".idx3-")])?)?;
        let (ldims, labels) =
            read_idx(&find(name, dir, &[lab, &lab.replace("-idx1-", ".idx1-")])?)?;
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
    let task = Task::Classify {
        classes: classes(&train, &test),
    };
    Ok(Dataset::new(name, &shape, task, train, test))
}

/// Ten classes, as the datasets define, even when a small `n_test` misses one; more if
/// user files at `data.path` hold more.
fn classes(train: &Split, test: &Split) -> usize {
    let top = train.y.iter().chain(&test.y).copied().max().unwrap_or(0);
    (top as usize + 1).max(10)
}

/// The folder at `data.path` that holds CIFAR-10's batches: itself or its
/// `cifar-10-batches-bin`.
fn cifar_folder(dir: &Path) -> Result<PathBuf> {
    for d in [dir.to_path_buf(), dir.join(CIFAR_DIR)] {
        if d.join(CIFAR_TEST).is_file() {
            return Ok(d);
        }
    }
    bail!(
        "no {CIFAR_TEST} in {} or its {CIFAR_DIR}/: data=cifar10 expects the binary version's \
         batches (data_batch_1.bin ... data_batch_5.bin, test_batch.bin), as unpacked from \
         {CIFAR_ARCHIVE}; set data.path to their folder, or data.path=null to download them",
        dir.display()
    )
}

/// Unpacks the downloaded archive's batches once, into a temporary folder renamed into
/// place, so a half-unpacked folder is never read.
fn unpack_cifar(cache: &Path) -> Result<PathBuf> {
    let out = cache.join(CIFAR_DIR);
    if out.join(CIFAR_TEST).is_file() {
        return Ok(out);
    }
    let archive = cache.join(CIFAR_ARCHIVE);
    let tmp = cache.join(format!(".{CIFAR_DIR}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let file =
        std::fs::File::open(&archive).with_context(|| format!("reading {}", archive.display()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let wanted: Vec<&str> = CIFAR_TRAIN.iter().copied().chain([CIFAR_TEST]).collect();
    let mut found = 0;
    for entry in tar
        .entries()
        .with_context(|| format!("{}: not a tar.gz archive", archive.display()))?
    {
        let mut entry = entry.with_context(|| format!("reading {}", archive.display()))?;
        let path = entry.path()?.into_owned();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if wanted.contains(&name) {
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .with_context(|| format!("{}: reading {name}", archive.display()))?;
            std::fs::write(tmp.join(name), bytes)
                .with_context(|| format!("writing {}", tmp.join(name).display()))?;
            found += 1;
        }
    }
    if found != wanted.len() {
        let _ = std::fs::remove_dir_all(&tmp);
        bail!(
            "{} holds {found} of CIFAR-10's six batches ({}); delete it to download it again",
            archive.display(),
            wanted.join(", ")
        );
    }
    if std::fs::rename(&tmp, &out).is_err() {
        // Another process placed it first.
        let _ = std::fs::remove_dir_all(&tmp);
        if !out.join(CIFAR_TEST).is_file() {
            bail!("could not move {} to {}", tmp.display(), out.display());
        }
    }
    Ok(out)
}

/// One record: a label byte, then 1024 red, 1024 green and 1024 blue bytes (row-major), which
/// is already `[3, 32, 32]`.
const RECORD: usize = 1 + 3 * 32 * 32;

fn cifar(dir: &Path, n_train: Option<usize>, n_test: Option<usize>) -> Result<Dataset> {
    let read = |files: &[&str], limit: Option<usize>| -> Result<Split> {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for f in files {
            if limit.is_some_and(|n| y.len() >= n) {
                break;
            }
            let path = dir.join(f);
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            if bytes.is_empty() || bytes.len() % RECORD != 0 {
                bail!(
                    "{}: {} bytes is not a whole number of CIFAR-10 records ({RECORD} bytes: \
                     a label, then 3x32x32 pixels); the file is truncated or not the binary version",
                    path.display(),
                    bytes.len()
                );
            }
            for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
                if limit.is_some_and(|n| y.len() >= n) {
                    break;
                }
                if rec[0] > 9 {
                    bail!(
                        "{}: record {i} has label {}, expected 0-9",
                        path.display(),
                        rec[0]
                    );
                }
                y.push(rec[0] as i64);
                x.extend(rec[1..].iter().map(|&v| v as f32 / 255.0));
            }
        }
        let n = y.len();
        Ok(Split::new(x, y, n))
    };
    let train = read(&CIFAR_TRAIN, n_train)?;
    let test = read(&[CIFAR_TEST], n_test)?;
    let task = Task::Classify { classes: 10 };
    Ok(Dataset::new("cifar10", &[3, 32, 32], task, train, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cifar_records_are_channel_major_images() {
        let dir = tempfile::tempdir().unwrap();
        fn rec(label: u8, fill: impl Fn(usize) -> u8) -> Vec<u8> {
            let mut r = vec![label];
            r.extend((0..3072).map(fill));
            r
        }
        // Record 0: red plane 255, others 0; record 1: pixel (c, i, j) = (c*7 + i + j) % 256.
        let mut batch = rec(3, |k| if k < 1024 { 255 } else { 0 });
        batch.extend(rec(9, |k| {
            ((k / 1024) * 7 + (k % 1024) / 32 + k % 32) as u8
        }));
        for f in CIFAR_TRAIN.iter().chain([&CIFAR_TEST]) {
            std::fs::write(dir.path().join(f), &batch).unwrap();
        }
        let ds = cifar(dir.path(), Some(3), None).unwrap();
        assert_eq!(ds.train.y, vec![3, 9, 3], "n_train reads across batches");
        assert_eq!(ds.test.y, vec![3, 9]);
        let x = &ds.test.x;
        assert_eq!(x[0], 1.0);
        assert_eq!(x[1024], 0.0);
        // Sample 1, channel 2, row 5, column 6.
        let at = 3072 + 2 * 1024 + 5 * 32 + 6;
        assert_eq!(x[at], (2 * 7 + 5 + 6) as f32 / 255.0);
        std::fs::write(dir.path().join(CIFAR_TEST), &batch[..100]).unwrap();
        let e = cifar(dir.path(), None, None).unwrap_err().to_string();
        assert!(
            e.contains("test_batch.bin: 100 bytes is not a whole number"),
            "{e}"
        );
    }
}
