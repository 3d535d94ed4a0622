//! Snapshots stream to spill files during training (memory stays flat however long the
//! run) and are assembled into `features.npz` at the end, or later by `inspect --repair`.

use crate::artifacts::npz::{Archive, NpzWriter};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

pub const ARCHIVE: &str = "features.npz";
pub const SPILL: &str = "features.spill";

/// Which counter an array's rows follow.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Index {
    /// One row per weight snapshot (`step`, `epoch`, `batch`).
    Weights,
    /// One row per gradient snapshot (`grad_step`).
    Grads,
    /// Written once (ground-truth features).
    Static,
}

impl Index {
    fn name(self) -> &'static str {
        match self {
            Index::Weights => "weights",
            Index::Grads => "grads",
            Index::Static => "static",
        }
    }
}

/// One array being spilled: raw little-endian rows of `shape` in `dtype`.
pub struct SpillArray {
    pub key: String,
    pub shape: Vec<usize>,
    pub f16: bool,
    pub index: Index,
    file: BufWriter<File>,
}

impl SpillArray {
    pub fn row_bytes(&self) -> u64 {
        self.shape.iter().product::<usize>() as u64 * if self.f16 { 2 } else { 4 }
    }

    /// Appends one row (one write of the whole slice; the archive is little-endian).
    pub fn push(&mut self, values: &[f32]) -> Result<()> {
        if self.f16 {
            let h: Vec<u16> = values
                .iter()
                .map(|v| half::f16::from_f32(*v).to_bits().to_le())
                .collect();
            self.file.write_all(bytemuck::cast_slice(&h))?;
        } else if cfg!(target_endian = "little") {
            self.file.write_all(bytemuck::cast_slice(values))?;
        } else {
            for v in values {
                self.file.write_all(&v.to_le_bytes())?;
            }
        }
        Ok(())
    }
}

/// The spill directory of one run, open for appending.
pub struct Spill {
    pub arrays: Vec<SpillArray>,
    weights_idx: BufWriter<File>,
    grads_idx: BufWriter<File>,
}

fn append(p: &Path) -> Result<BufWriter<File>> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .with_context(|| format!("opening {}", p.display()))?;
    Ok(BufWriter::new(f))
}

impl Spill {
    /// Starts a spill next to `run_dir`'s archive. `meta` is the archive's metadata (without
    /// the arrays, which this fills in); `arrays` are (key, row shape, f16, index).
    pub fn create(
        run_dir: &Path,
        meta: Value,
        arrays: &[(String, Vec<usize>, bool, Index)],
    ) -> Result<Spill> {
        let dir = run_dir.join(SPILL);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut list = vec![];
        let mut opened = vec![];
        for (i, (key, shape, f16, index)) in arrays.iter().enumerate() {
            let file = format!("{i}.bin");
            list.push(json!({"key": key, "file": file, "shape": shape, "dtype": if *f16 {"f16"} else {"f32"}, "index": index.name()}));
            opened.push(SpillArray {
                key: key.clone(),
                shape: shape.clone(),
                f16: *f16,
                index: *index,
                file: append(&dir.join(file))?,
            });
        }
        let mut meta = meta;
        meta["arrays"] = Value::Array(list);
        crate::plan::rundir::write_atomic(
            &dir.join("meta.json"),
            &serde_json::to_string_pretty(&meta)?,
        )?;
        Ok(Spill {
            weights_idx: append(&dir.join("weights.idx"))?,
            grads_idx: append(&dir.join("grads.idx"))?,
            arrays: opened,
        })
    }

    /// Closes a snapshot: the index row goes last, so a crash mid-snapshot leaves an index
    /// that only names complete rows.
    pub fn commit(&mut self, index: Index, row: &[i64]) -> Result<()> {
        for a in self.arrays.iter_mut().filter(|a| a.index == index) {
            a.file.flush()?;
        }
        let f = match index {
            Index::Weights => &mut self.weights_idx,
            Index::Grads => &mut self.grads_idx,
            Index::Static => return Ok(()),
        };
        for v in row {
            f.write_all(&v.to_le_bytes())?;
        }
        f.flush()?;
        Ok(())
    }

    pub fn flush_static(&mut self) -> Result<()> {
        for a in self.arrays.iter_mut().filter(|a| a.index == Index::Static) {
            a.file.flush()?;
        }
        Ok(())
    }
}

fn read_i64s(p: &Path) -> Result<Vec<i64>> {
    let mut bytes = vec![];
    if p.exists() {
        File::open(p)?.read_to_end(&mut bytes)?;
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect())
}

/// A snapshot on its way to disk.
pub enum Msg {
    /// Tracked weights of one step (in spill order) with its (step, epoch, batch) row.
    Weights {
        row: [i64; 3],
        tensors: Vec<Vec<f32>>,
    },
    /// Gradients at the weights of `step`.
    Grads { step: i64, tensors: Vec<Vec<f32>> },
}

/// A tracked weight to align with a ground-truth feature matrix after each snapshot.
pub struct AlignJob {
    pub param: usize,
    pub rows: usize,
    pub feature: crate::data::GroundTruth,
}

/// Writes snapshots on a background thread, so training only pays for the copy to the
/// host; a bounded queue keeps memory flat when the disk is slower than training.
pub struct Writer {
    tx: Option<std::sync::mpsc::SyncSender<Msg>>,
    handle: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Writer {
    pub fn start(mut spill: Spill, aligns: Vec<AlignJob>) -> Writer {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Msg>(16);
        let handle = std::thread::spawn(move || -> Result<()> {
            let grads_at = spill
                .arrays
                .iter()
                .position(|a| a.index == Index::Grads)
                .unwrap_or(0);
            for msg in rx {
                match msg {
                    Msg::Weights { row, tensors } => {
                        for (i, t) in tensors.iter().enumerate() {
                            spill.arrays[i].push(t)?;
                        }
                        let base = tensors.len();
                        for (k, a) in aligns.iter().enumerate() {
                            let f = &a.feature;
                            let (raw, normed) = super::align::alignment(
                                &tensors[a.param],
                                a.rows,
                                &f.values,
                                f.rows,
                                f.dim,
                            );
                            spill.arrays[base + 2 * k].push(&raw)?;
                            spill.arrays[base + 2 * k + 1].push(&normed)?;
                        }
                        spill.commit(Index::Weights, &row)?;
                    }
                    Msg::Grads { step, tensors } => {
                        for (i, t) in tensors.iter().enumerate() {
                            spill.arrays[grads_at + i].push(t)?;
                        }
                        spill.commit(Index::Grads, &[step])?;
                    }
                }
            }
            Ok(())
        });
        Writer {
            tx: Some(tx),
            handle: Some(handle),
        }
    }

    /// Queues a snapshot; if the writer failed, returns its error.
    pub fn send(&mut self, msg: Msg) -> Result<()> {
        let failed = match &self.tx {
            Some(tx) => tx.send(msg).is_err(),
            None => true,
        };
        if failed {
            self.tx = None;
            return self.join();
        }
        Ok(())
    }

    /// Waits until every queued snapshot is on disk.
    pub fn finish(mut self) -> Result<()> {
        self.tx = None;
        self.join()
    }

    fn join(&mut self) -> Result<()> {
        match self.handle.take() {
            Some(h) => h
                .join()
                .map_err(|_| anyhow::anyhow!("the snapshot writer thread panicked"))?
                .context("writing feature snapshots"),
            None => bail!("the snapshot writer stopped earlier"),
        }
    }
}

/// Assembles `features.npz` from the spill in `run_dir` (atomically) and removes the spill.
/// Rows a crash left incomplete are dropped. `complete`: the run ended normally (false
/// when repairing after a crash). Returns the number of weight snapshots.
pub fn finish(run_dir: &Path, complete: bool) -> Result<usize> {
    let dir = run_dir.join(SPILL);
    let meta_path = dir.join("meta.json");
    let text = std::fs::read_to_string(&meta_path).with_context(|| {
        format!(
            "no snapshot spill to assemble in {} ({} missing)",
            run_dir.display(),
            meta_path.display()
        )
    })?;
    let mut meta: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", meta_path.display()))?;
    let arrays = meta["arrays"].as_array().cloned().unwrap_or_default();
    let widx = read_i64s(&dir.join("weights.idx"))?;
    let gidx = read_i64s(&dir.join("grads.idx"))?;
    let mut t_w = widx.len() / 3;
    let mut t_g = gidx.len();
    let row_bytes = |a: &Value| -> u64 {
        let n: u64 = a["shape"]
            .as_array()
            .map_or(0, |s| s.iter().filter_map(|d| d.as_u64()).product());
        n * if a["dtype"] == "f16" { 2 } else { 4 }
    };
    // Never claim more rows than every array of that kind holds.
    for a in &arrays {
        let size =
            std::fs::metadata(dir.join(a["file"].as_str().unwrap_or(""))).map_or(0, |m| m.len());
        let rows = (size / row_bytes(a).max(1)) as usize;
        match a["index"].as_str() {
            Some("weights") => t_w = t_w.min(rows),
            Some("grads") => t_g = t_g.min(rows),
            _ => {}
        }
    }
    let out = run_dir.join(ARCHIVE);
    let mut w = NpzWriter::create(&out)?;
    let steps: Vec<i64> = widx.chunks_exact(3).take(t_w).map(|r| r[0]).collect();
    w.i64_array("step", &steps)?;
    w.i64_array(
        "epoch",
        &widx
            .chunks_exact(3)
            .take(t_w)
            .map(|r| r[1])
            .collect::<Vec<_>>(),
    )?;
    w.i64_array(
        "batch",
        &widx
            .chunks_exact(3)
            .take(t_w)
            .map(|r| r[2])
            .collect::<Vec<_>>(),
    )?;
    if t_g > 0 {
        w.i64_array("grad_step", &gidx[..t_g])?;
    }
    let mut described = vec![];
    for a in &arrays {
        let key = a["key"].as_str().unwrap_or("?").to_string();
        let shape: Vec<usize> = a["shape"].as_array().map_or(vec![], |s| {
            s.iter()
                .filter_map(|d| d.as_u64().map(|d| d as usize))
                .collect()
        });
        let (descr, item) = if a["dtype"] == "f16" {
            ("<f2", 2)
        } else {
            ("<f4", 4)
        };
        let full: Vec<usize> = match a["index"].as_str() {
            Some("weights") => std::iter::once(t_w).chain(shape.iter().copied()).collect(),
            Some("grads") => {
                if t_g == 0 {
                    continue;
                }
                std::iter::once(t_g).chain(shape.iter().copied()).collect()
            }
            _ => shape.clone(),
        };
        let mut f = BufReader::new(File::open(dir.join(a["file"].as_str().unwrap_or("")))?);
        w.array_from(&key, descr, &full, item, &mut f)?;
        described.push(json!({"key": key, "shape": full, "dtype": descr}));
    }
    meta["snapshots"] = t_w.into();
    meta["gradient_snapshots"] = t_g.into();
    meta["arrays"] = described.into();
    meta["complete"] = complete.into();
    w.string("metadata", &meta.to_string())?;
    w.finish()?;
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(t_w)
}

/// Copies the snapshots of an existing archive up to step `upto` into a fresh spill (a resumed
/// run keeps its history; later ones were taken by the stopped run past its checkpoint and are
/// taken again). Arrays are matched by key; the archive must hold the same arrays.
pub fn import(archive: &Path, spill: &mut Spill, upto: usize) -> Result<usize> {
    let mut a = Archive::open(archive)?;
    let all_steps = a.read_i64("step")?;
    let all_grads = if a.names().iter().any(|n| n == "grad_step") {
        a.read_i64("grad_step")?
    } else {
        vec![]
    };
    let keep = |s: &[i64]| s.iter().take_while(|&&x| x <= upto as i64).count();
    let (t_w, t_g) = (keep(&all_steps), keep(&all_grads));
    let steps = &all_steps[..t_w];
    let grad_steps = &all_grads[..t_g];
    let epochs = a.read_i64("epoch")?;
    let batches = a.read_i64("batch")?;
    for s in spill.arrays.iter_mut().filter(|s| s.index != Index::Static) {
        let bytes = a.raw_data(&s.key)?;
        let (rows, kept) = match s.index {
            Index::Weights => (all_steps.len(), t_w),
            _ => (all_grads.len(), t_g),
        };
        if bytes.len() as u64 != s.row_bytes() * rows as u64 {
            bail!("{}: '{}' does not match the tracker's settings; move the archive away to start a new one", archive.display(), s.key);
        }
        s.file
            .write_all(&bytes[..(s.row_bytes() * kept as u64) as usize])?;
    }
    for i in 0..steps.len() {
        spill.commit(Index::Weights, &[steps[i], epochs[i], batches[i]])?;
    }
    for g in grad_steps {
        spill.commit(Index::Grads, &[*g])?;
    }
    Ok(steps.len())
}
