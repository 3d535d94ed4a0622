//! Tracked weights reduced to one number a snapshot (weight norm, feature recovery, growth
//! along the features, purity): a run's figures draw them, and overlays compare them across runs.

use super::load::Run;
use super::{subsample, MAX_TIMES};
use crate::artifacts::npz::Archive;
use crate::track::spill;
use anyhow::Result;

/// One tracked quantity of a run over its snapshots.
pub(super) struct Summary {
    /// File-name part: `norm_<tensor>`, `recovery_<tensor>_<feature>`, ...
    pub name: String,
    /// What the number is, in full (the figure's title).
    pub label: String,
    /// The y axis.
    pub axis: &'static str,
    /// `(step, value)`.
    pub points: Vec<(f64, f64)>,
}

type Points = Vec<(f64, f64)>;

/// `‖W(t)‖`, the Frobenius norm of the whole tensor.
pub(super) fn norm(ar: &mut Archive, tensor: &str, steps: &[i64], idx: &[usize]) -> Result<Points> {
    let (_, snaps) = ar.read_steps(tensor, idx)?;
    Ok(idx
        .iter()
        .zip(&snaps)
        .map(|(&i, v)| {
            let n = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            (steps[i] as f64, n)
        })
        .collect())
}

/// Feature recovery `meanⱼ maxᵣ |cos(wᵣ, mⱼ)|`: how well each ground-truth feature is found
/// by its best neuron, averaged over the features (1 = every feature has a neuron on it).
pub(super) fn recovery(
    ar: &mut Archive,
    tensor: &str,
    feature: &str,
    steps: &[i64],
    idx: &[usize],
) -> Result<Points> {
    let (shape, snaps) = ar.read_steps(&format!("align_norm.{tensor}.{feature}"), idx)?;
    let (rows, k) = (shape[0], shape.get(1).copied().unwrap_or(1));
    Ok(idx
        .iter()
        .zip(&snaps)
        .map(|(&i, a)| {
            let mean_best = (0..k)
                .map(|j| (0..rows).fold(0.0f64, |m, r| m.max((a[r * k + j] as f64).abs())))
                .sum::<f64>()
                / k.max(1) as f64;
            (steps[i] as f64, mean_best)
        })
        .collect())
}

/// Growth along the features `meanⱼ maxᵣ ⟨wᵣ(t) − wᵣ(0), mⱼ⟩` (for one signal vector:
/// signal learning; for the training noise vectors: noise memorisation). `idx` starts at
/// the first snapshot, the initialisation it is measured from.
pub(super) fn growth(
    ar: &mut Archive,
    tensor: &str,
    feature: &str,
    steps: &[i64],
    idx: &[usize],
) -> Result<Points> {
    let (shape, snaps) = ar.read_steps(&format!("align.{tensor}.{feature}"), idx)?;
    let (rows, k) = (shape[0], shape.get(1).copied().unwrap_or(1));
    let init = &snaps[0];
    Ok(idx
        .iter()
        .zip(&snaps)
        .map(|(&i, a)| {
            let mean_best = (0..k)
                .map(|j| {
                    (0..rows)
                        .map(|r| (a[r * k + j] - init[r * k + j]) as f64)
                        .fold(f64::MIN, f64::max)
                })
                .sum::<f64>()
                / k.max(1) as f64;
            (steps[i] as f64, mean_best)
        })
        .collect())
}

/// The fraction of `‖W‖²` in the span of the features, `Σᵣ cᵣᵀ G⁻¹ cᵣ / ‖W‖²` with
/// `cᵣ = M wᵣ` and `G = M Mᵀ` (for axes: the weight on those coordinates; Barak et al.'s
/// progress measure on sparse parity, the lazy-vs-rich subspace alignment). At a random
/// start it is about `features / input width`.
pub(super) fn subspace(
    ar: &mut Archive,
    tensor: &str,
    feature: &str,
    steps: &[i64],
    idx: &[usize],
) -> Result<Points> {
    let m = ar.read(&format!("gt.{feature}"))?;
    let (k, d) = (m.shape[0], m.shape.get(1).copied().unwrap_or(1));
    let g: Vec<f64> = (0..k * k)
        .map(|ij| {
            let (i, j) = (ij / k, ij % k);
            (0..d)
                .map(|t| m.values[i * d + t] as f64 * m.values[j * d + t] as f64)
                .sum()
        })
        .collect();
    let ginv = inverse(&g, k);
    let (shape, snaps) = ar.read_steps(&format!("align.{tensor}.{feature}"), idx)?;
    let rows = shape[0];
    let (_, weights) = ar.read_steps(tensor, idx)?;
    Ok(idx
        .iter()
        .zip(snaps.iter().zip(&weights))
        .map(|(&i, (c, w))| {
            let total: f64 = w.iter().map(|v| (*v as f64).powi(2)).sum();
            let mut inside = 0.0f64;
            for r in 0..rows {
                let cr = &c[r * k..(r + 1) * k];
                for a in 0..k {
                    let ga: f64 = (0..k).map(|b| ginv[a * k + b] * cr[b] as f64).sum();
                    inside += cr[a] as f64 * ga;
                }
            }
            (steps[i] as f64, inside / total.max(1e-30))
        })
        .collect())
}

/// The inverse of a symmetric positive (semi)definite `k x k` matrix by Gauss-Jordan, with
/// a tiny ridge so linearly dependent features do not divide by zero.
fn inverse(g: &[f64], k: usize) -> Vec<f64> {
    let ridge = 1e-12 * (0..k).map(|i| g[i * k + i]).sum::<f64>().max(1e-300);
    let mut a: Vec<f64> = g.to_vec();
    for i in 0..k {
        a[i * k + i] += ridge;
    }
    let mut inv: Vec<f64> = (0..k * k)
        .map(|ij| if ij / k == ij % k { 1.0 } else { 0.0 })
        .collect();
    for col in 0..k {
        let piv = (col..k)
            .max_by(|&x, &y| a[x * k + col].abs().total_cmp(&a[y * k + col].abs()))
            .unwrap_or(col);
        for j in 0..k {
            a.swap(col * k + j, piv * k + j);
            inv.swap(col * k + j, piv * k + j);
        }
        let p = a[col * k + col];
        if p.abs() < 1e-300 {
            continue;
        }
        for j in 0..k {
            a[col * k + j] /= p;
            inv[col * k + j] /= p;
        }
        for r in 0..k {
            if r != col {
                let f = a[r * k + col];
                if f != 0.0 {
                    for j in 0..k {
                        a[r * k + j] -= f * a[col * k + j];
                        inv[r * k + j] -= f * inv[col * k + j];
                    }
                }
            }
        }
    }
    inv
}

/// How concentrated the neurons are on few features: purity `maxⱼ |cᵣⱼ| / ‖cᵣ‖` (1 = one
/// feature) and participation ratio `‖cᵣ‖⁴ / Σⱼ cᵣⱼ⁴` (1 .. k), with `cᵣ` a neuron's
/// coefficients on the features; means weighted by `‖cᵣ‖`, so the many near-zero neurons
/// of a small initialisation do not dominate (feature purification).
pub(super) fn concentration(
    ar: &mut Archive,
    tensor: &str,
    feature: &str,
    steps: &[i64],
    idx: &[usize],
) -> Result<(Points, Points)> {
    let (shape, snaps) = ar.read_steps(&format!("align.{tensor}.{feature}"), idx)?;
    let (rows, k) = (shape[0], shape.get(1).copied().unwrap_or(1));
    let (mut purity, mut pr) = (vec![], vec![]);
    for (&i, c) in idx.iter().zip(&snaps) {
        let (mut wsum, mut p, mut r) = (0.0f64, 0.0f64, 0.0f64);
        for n in 0..rows {
            let row = &c[n * k..(n + 1) * k];
            let n2: f64 = row.iter().map(|v| (*v as f64).powi(2)).sum();
            let n4: f64 = row.iter().map(|v| (*v as f64).powi(4)).sum();
            let norm = n2.sqrt();
            if norm <= 0.0 || n4 <= 0.0 {
                continue;
            }
            let max = row.iter().fold(0.0f64, |m, v| m.max((*v as f64).abs()));
            wsum += norm;
            p += max;
            r += norm * n2 * n2 / n4;
        }
        let x = steps[i] as f64;
        purity.push((x, p / wsum.max(1e-30)));
        pr.push((x, r / wsum.max(1e-30)));
    }
    Ok((purity, pr))
}

/// Every summary of `tensor` (default: the first tracked one) that the run's archive
/// allows; none for a run without an archive (`tracker=none`). A run whose archive cannot
/// be read is an error naming it.
pub(super) fn of_run(run: &Run, tensor: Option<&str>) -> Result<Vec<Summary>> {
    let has_spill = run.dir.join(spill::SPILL).join("meta.json").exists();
    if !run.dir.join(spill::ARCHIVE).exists() && !has_spill {
        return Ok(vec![]);
    }
    let mut ar = run.archive()?;
    let tracked = ar.tracked();
    let Some(t) = tensor
        .map(String::from)
        .or_else(|| tracked.first().cloned())
        .filter(|t| tracked.contains(t))
    else {
        return Ok(vec![]);
    };
    let steps = ar.read_i64("step")?;
    if steps.is_empty() {
        return Ok(vec![]);
    }
    let idx = subsample(steps.len(), MAX_TIMES);
    let names: Vec<String> = ar.names().to_vec();
    let features = |prefix: String| -> Vec<String> {
        names
            .iter()
            .filter_map(|n| n.strip_prefix(&prefix).map(String::from))
            .collect()
    };
    let mut out = vec![Summary {
        name: format!("norm_{t}"),
        label: format!("norm ‖W‖ of {t}"),
        axis: "‖W‖",
        points: norm(&mut ar, &t, &steps, &idx)?,
    }];
    for f in features(format!("align_norm.{t}.")) {
        out.push(Summary {
            name: format!("recovery_{t}_{f}"),
            label: format!("feature recovery meanⱼ maxᵣ |cos(wᵣ, {f}ⱼ)| of {t}"),
            axis: "recovery",
            points: recovery(&mut ar, &t, &f, &steps, &idx)?,
        });
    }
    for f in features(format!("align.{t}.")) {
        out.push(Summary {
            name: format!("growth_{t}_{f}"),
            label: format!("growth meanⱼ maxᵣ ⟨wᵣ(t) − wᵣ(0), {f}ⱼ⟩ of {t}"),
            axis: "growth",
            points: growth(&mut ar, &t, &f, &steps, &idx)?,
        });
        if ar.names().iter().any(|n| *n == format!("gt.{f}")) {
            out.push(Summary {
                name: format!("subspace_{t}_{f}"),
                label: format!("fraction of ‖{t}‖² in span({f})"),
                axis: "fraction in span",
                points: subspace(&mut ar, &t, &f, &steps, &idx)?,
            });
        }
        if ar
            .shape(&format!("align.{t}.{f}"))?
            .get(2)
            .copied()
            .unwrap_or(1)
            >= 2
        {
            out.push(Summary {
                name: format!("purity_{t}_{f}"),
                label: format!("purity maxⱼ |cᵣⱼ| / ‖cᵣ‖ of {t} on {f}"),
                axis: "purity",
                points: concentration(&mut ar, &t, &f, &steps, &idx)?.0,
            });
        }
    }
    Ok(out)
}
