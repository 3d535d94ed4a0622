//! NumPy `.npz` archives: a streaming writer (arrays copied from spill files, never held in
//! memory whole; temp name then rename) and a lazy reader built on npyz + zip.

use anyhow::{anyhow, bail, Context, Result};
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use zip::write::SimpleFileOptions;

/// `.npy` v1/v2 header for a C-ordered array of `descr` (`<f4`, `<f2`, `<i8`, `<U12`).
pub fn npy_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|s| s.to_string()).collect();
    let shape_s = match dims.len() {
        0 => "()".to_string(),
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_s}, }}");
    // Version 1 has a 2-byte header length; pad so the data starts 64-byte aligned.
    let v2 = dict.len() + 12 > 65535;
    let pre = if v2 { 12 } else { 10 };
    while (pre + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    if v2 {
        out.extend_from_slice(&[2, 0]);
        out.extend_from_slice(&(dict.len() as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out
}

/// Writes `<path>.tmp`, renamed to `path` by `finish`: readers see a complete archive or none.
pub struct NpzWriter {
    zip: zip::ZipWriter<File>,
    tmp: PathBuf,
    path: PathBuf,
}

impl NpzWriter {
    pub fn create(path: &Path) -> Result<NpzWriter> {
        let tmp = path.with_extension("npz.tmp");
        let f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        Ok(NpzWriter {
            zip: zip::ZipWriter::new(f),
            tmp,
            path: path.to_path_buf(),
        })
    }

    fn start(&mut self, name: &str, bytes: u64) -> Result<()> {
        // Stored, like numpy.savez: no compression cost, and members can be read in place.
        let opts = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(bytes >= u32::MAX as u64 / 2);
        self.zip
            .start_file(format!("{name}.npy"), opts)
            .with_context(|| format!("adding {name} to {}", self.tmp.display()))
    }

    /// An array whose raw little-endian data is read from `data` (exactly the shape's bytes).
    pub fn array_from(
        &mut self,
        name: &str,
        descr: &str,
        shape: &[usize],
        item: usize,
        data: &mut impl Read,
    ) -> Result<()> {
        let n: usize = shape.iter().product::<usize>() * item;
        self.start(name, n as u64)?;
        self.zip.write_all(&npy_header(descr, shape))?;
        let copied = std::io::copy(&mut data.take(n as u64), &mut self.zip)?;
        if copied != n as u64 {
            bail!("{name}: expected {n} bytes of data, found {copied}");
        }
        Ok(())
    }

    pub fn i64_array(&mut self, name: &str, values: &[i64]) -> Result<()> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.array_from(name, "<i8", &[values.len()], 8, &mut &bytes[..])
    }

    /// A 0-d unicode array (`str(z[name])` in numpy), for the JSON metadata.
    pub fn string(&mut self, name: &str, text: &str) -> Result<()> {
        let chars: Vec<char> = text.chars().collect();
        let n = chars.len().max(1);
        let mut bytes: Vec<u8> = chars
            .iter()
            .flat_map(|c| (*c as u32).to_le_bytes())
            .collect();
        bytes.resize(n * 4, 0);
        self.array_from(name, &format!("<U{n}"), &[], n * 4, &mut &bytes[..])
    }

    /// A member copied as it is (its `.npy` bytes), e.g. from a damaged archive.
    pub fn raw(&mut self, name: &str, npy: &[u8]) -> Result<()> {
        self.start(name, npy.len() as u64)?;
        self.zip.write_all(npy)?;
        Ok(())
    }

    pub fn finish(self) -> Result<()> {
        let f = self.zip.finish().context("finishing the archive")?;
        drop(f);
        crate::plan::rundir::commit(&self.tmp, &self.path)
    }
}

/// What [`salvage`] kept and lost.
pub struct Salvaged {
    pub kept: Vec<String>,
    /// The member cut short, if the damage fell inside one.
    pub cut: Option<String>,
}

/// Rebuilds an archive cut short (its central directory lost: a full disk, a kill while
/// copying) from the members that are whole, read in order from their local headers. The
/// damaged file is kept beside it as `<name>.damaged`. Metadata (written last) is usually
/// lost; a minimal one names the tracked arrays and marks the archive as salvaged.
pub fn salvage(path: &Path) -> Result<Salvaged> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut r = BufReader::new(f);
    let (mut members, mut cut) = (Vec::<(String, Vec<u8>)>::new(), None);
    while let Ok(Some(mut e)) = zip::read::read_zipfile_from_stream(&mut r) {
        let name = e.name().trim_end_matches(".npy").to_string();
        let mut bytes = vec![];
        // A member cut short fails its size or CRC check here.
        if e.read_to_end(&mut bytes).is_err() {
            cut = Some(name);
            break;
        }
        members.push((name, bytes));
    }
    if !members.iter().any(|m| m.0 == "step") {
        bail!(
            "{}: not even the step index survived; nothing to salvage",
            path.display()
        );
    }
    let damaged = path.with_extension("npz.damaged");
    std::fs::rename(path, &damaged).with_context(|| format!("moving {} aside", path.display()))?;
    let mut w = NpzWriter::create(path)?;
    for (name, bytes) in &members {
        w.raw(name, bytes)?;
    }
    if !members.iter().any(|m| m.0 == "metadata") {
        const INDEX: &[&str] = &["step", "epoch", "batch", "grad_step", "gt_features"];
        let layers: Vec<&str> = members
            .iter()
            .map(|m| m.0.as_str())
            .filter(|n| {
                !INDEX.contains(n)
                    && !n.starts_with("align")
                    && !n.starts_with("gt.")
                    && !n.starts_with("grad.")
            })
            .collect();
        let meta = serde_json::json!({
            "format": "ezflt-features/1",
            "layers": layers,
            "complete": false,
            "salvaged": true,
        });
        w.string("metadata", &meta.to_string())?;
    }
    w.finish()?;
    Ok(Salvaged {
        kept: members.into_iter().map(|m| m.0).collect(),
        cut,
    })
}

/// One array of an archive, read whole as f32 (f16 and integers are converted).
pub struct Array {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// A `.npz` opened for lazy reading: members are parsed only when asked for.
pub struct Archive {
    zip: zip::ZipArchive<BufReader<File>>,
    path: PathBuf,
}

impl Archive {
    pub fn open(path: &Path) -> Result<Archive> {
        let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let zip = zip::ZipArchive::new(BufReader::new(f))
            .with_context(|| format!("{}: not a .npz archive", path.display()))?;
        Ok(Archive {
            zip,
            path: path.to_path_buf(),
        })
    }

    /// Member names without `.npy`, in archive order.
    pub fn names(&self) -> Vec<String> {
        self.zip
            .file_names()
            .map(|n| n.trim_end_matches(".npy").to_string())
            .collect()
    }

    fn member(&mut self, name: &str) -> Result<zip::read::ZipFile<'_, BufReader<File>>> {
        let names = self.names();
        let path = self.path.display().to_string();
        self.zip.by_name(&format!("{name}.npy")).map_err(|_| {
            anyhow!(
                "{path} has no array '{name}'; it holds: {}",
                names.join(", ")
            )
        })
    }

    /// Shape of an array without reading its data.
    pub fn shape(&mut self, name: &str) -> Result<Vec<usize>> {
        let m = self.member(name)?;
        let f = npyz::NpyFile::new(m)?;
        Ok(f.shape().iter().map(|&s| s as usize).collect())
    }

    /// The feature archive's `metadata` JSON (null when absent or unreadable: a salvaged file).
    pub fn metadata(&mut self) -> serde_json::Value {
        self.read_string("metadata")
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// The tracked parameters its metadata lists, in module order.
    pub fn tracked(&mut self) -> Vec<String> {
        self.metadata()["layers"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A 0-d unicode array (the metadata JSON).
    pub fn read_string(&mut self, name: &str) -> Result<String> {
        let raw = self.raw_data(name)?;
        Ok(raw
            .chunks_exact(4)
            .filter_map(|c| char::from_u32(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .filter(|c| *c != '\0')
            .collect())
    }

    pub fn read(&mut self, name: &str) -> Result<Array> {
        let what = format!("{}[{name}]", self.path.display());
        let m = self.member(name)?;
        let (shape, values) = crate::data::files::npy_array(m, &what)?;
        Ok(Array { shape, values })
    }

    pub fn read_i64(&mut self, name: &str) -> Result<Vec<i64>> {
        let what = format!("{}[{name}]", self.path.display());
        let f = npyz::NpyFile::new(self.member(name)?)
            .with_context(|| format!("{what}: not a .npy array"))?;
        f.into_vec::<i64>()
            .with_context(|| format!("{what}: expected int64 values"))
    }

    /// The data bytes of an array, as stored (little-endian, C order).
    pub fn raw_data(&mut self, name: &str) -> Result<Vec<u8>> {
        let f = npyz::NpyFile::new(self.member(name)?)?;
        let mut r = f.into_inner();
        let mut v = vec![];
        r.read_to_end(&mut v)?;
        Ok(v)
    }

    /// Snapshots `indices` (sorted, deduplicated) of a `[T, ...]` array in one pass over
    /// the member: the row shape and one vector per index.
    pub fn read_steps(
        &mut self,
        name: &str,
        indices: &[usize],
    ) -> Result<(Vec<usize>, Vec<Vec<f32>>)> {
        let what = format!("{}[{name}]", self.path.display());
        let m = self.member(name)?;
        let f = npyz::NpyFile::new(m).with_context(|| format!("{what}: not a .npy array"))?;
        let shape: Vec<usize> = f.shape().iter().map(|&s| s as usize).collect();
        let Some((&t, rest)) = shape.split_first() else {
            bail!("{what} is a scalar, not a [T, ...] snapshot array");
        };
        if let Some(bad) = indices.iter().find(|&&i| i >= t) {
            bail!("{what} has {t} snapshots; index {bad} is out of range");
        }
        let per: usize = rest.iter().product();
        let descr = f.dtype().descr().trim_matches('\'').to_string();
        let item = match descr.as_str() {
            "<f4" => 4,
            "<f2" => 2,
            other => bail!("{what}: dtype {other} is not a float snapshot"),
        };
        let mut r = f.into_inner();
        let mut buf = vec![0u8; per * item];
        let mut out = Vec::with_capacity(indices.len());
        let last = indices.last().copied().unwrap_or(0);
        let mut want = indices.iter().peekable();
        for row in 0..=last.min(t.saturating_sub(1)) {
            r.read_exact(&mut buf)?;
            if want.peek() == Some(&&row) {
                want.next();
                out.push(if item == 4 {
                    buf.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect()
                } else {
                    buf.chunks_exact(2)
                        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                        .collect()
                });
            }
        }
        Ok((rest.to_vec(), out))
    }

    /// Snapshot `index` of a `[T, ...]` array, reading only up to that slice.
    pub fn read_step(&mut self, name: &str, index: usize) -> Result<Array> {
        let (shape, mut v) = self.read_steps(name, &[index])?;
        Ok(Array {
            shape,
            values: v.pop().unwrap_or_default(),
        })
    }
}
