//! Neuron-by-feature alignment of a weight with planted ground-truth features:
//! `A[r, j] = <w_r, m_j>` and `A[r, j] / ||w_r||` (rows of the weight = neurons).

/// `w`: `[rows, dim]`, `f`: `[k, dim]` (unit rows). Returns (raw, normalised), `[rows, k]`.
pub fn alignment(w: &[f32], rows: usize, f: &[f32], k: usize, dim: usize) -> (Vec<f32>, Vec<f32>) {
    let mut raw = vec![0.0f32; rows * k];
    let mut normed = vec![0.0f32; rows * k];
    for r in 0..rows {
        let wr = &w[r * dim..(r + 1) * dim];
        let n = dot(wr, wr).sqrt().max(1e-12);
        for j in 0..k {
            let d = dot(wr, &f[j * dim..(j + 1) * dim]);
            raw[r * k + j] = d;
            normed[r * k + j] = d / n;
        }
    }
    (raw, normed)
}

/// A dot product in 8 independent lanes, which the compiler turns into SIMD (a plain
/// `sum()` must add in order and cannot be vectorised): the tracker's alignment of every
/// snapshot with every feature is most of its cost.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// For each ground-truth feature, the best |cosine| any neuron (row of `w`) reaches; averaged
/// over features: 1 when every feature has a neuron aligned with it.
pub fn mean_best_cosine(w: &[f32], rows: usize, f: &[f32], k: usize, dim: usize) -> f64 {
    if k == 0 || rows == 0 || w.len() < rows * dim || f.len() < k * dim {
        return 0.0;
    }
    let norm = |v: &[f32]| {
        v.iter()
            .map(|x| (*x as f64).powi(2))
            .sum::<f64>()
            .sqrt()
            .max(1e-12)
    };
    let wn: Vec<f64> = (0..rows)
        .map(|r| norm(&w[r * dim..(r + 1) * dim]))
        .collect();
    let mut total = 0.0;
    for j in 0..k {
        let fj = &f[j * dim..(j + 1) * dim];
        let fnorm = norm(fj);
        let best = (0..rows)
            .map(|r| {
                let dot: f64 = w[r * dim..(r + 1) * dim]
                    .iter()
                    .zip(fj)
                    .map(|(a, b)| *a as f64 * *b as f64)
                    .sum();
                (dot / (wn[r] * fnorm)).abs()
            })
            .fold(0.0, f64::max);
        total += best;
    }
    total / k as f64
}

#[cfg(test)]
mod tests {
    #[test]
    fn alignment_of_a_known_matrix() {
        // w = [[3, 4], [0, -2]], features e1, e2.
        let (raw, n) = super::alignment(&[3.0, 4.0, 0.0, -2.0], 2, &[1.0, 0.0, 0.0, 1.0], 2, 2);
        assert_eq!(raw, vec![3.0, 4.0, 0.0, -2.0]);
        assert_eq!(n, vec![0.6, 0.8, 0.0, -1.0]);
    }
}
