//! Scalars of the tracked weights logged with every evaluation (`tracker.metrics=true`): how
//! far each moved from its initialisation and how much of it lies in the ground truth's span.

use crate::data::GroundTruth;
use crate::train::trainer::ModelView;

/// What one tracked tensor reports.
struct Item {
    /// Index into `WeightMetrics::read`.
    at: usize,
    name: String,
    rows: usize,
    cols: usize,
    /// The layer that reads this one's rows (`[_, rows]`), for the weighted alignment.
    next: Option<usize>,
    /// `(feature name, orthonormal basis rows [k, cols])` of the features of this width.
    spans: Vec<(String, Vec<f64>)>,
}

pub struct WeightMetrics {
    /// Parameters read at each measurement, in module order.
    read: Vec<String>,
    items: Vec<Item>,
    /// The tracked tensors at initialisation, as read.
    init: Vec<Vec<f64>>,
}

impl WeightMetrics {
    /// For the parameters `selected` (indices into `params`, module order), measured against
    /// `init`'s weights: the initialisation, also when a run resumes.
    pub fn new(
        selected: &[usize],
        params: &[(String, Vec<usize>)],
        features: &[GroundTruth],
        init: &dyn ModelView,
    ) -> WeightMetrics {
        let mut read: Vec<String> = vec![];
        let slot = |name: &str, read: &mut Vec<String>| match read.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                read.push(name.to_string());
                read.len() - 1
            }
        };
        let mut items = vec![];
        for &i in selected {
            let (name, shape) = &params[i];
            let at = slot(name, &mut read);
            let (rows, cols) = match shape.as_slice() {
                [r, c] => (*r, *c),
                s => (1, s.iter().product()),
            };
            let matrix = shape.len() == 2;
            let next = params[i + 1..]
                .iter()
                .find(|(_, s)| s.len() == 2 && s[1] == rows)
                .filter(|_| matrix)
                .map(|(n, _)| slot(n, &mut read));
            let spans = features
                .iter()
                .filter(|f| matrix && f.dim == cols && f.dim > 1)
                .map(|f| (f.name.clone(), basis(&f.values, f.rows, f.dim)))
                .collect();
            items.push(Item {
                at,
                name: name.clone(),
                rows,
                cols,
                next,
                spans,
            });
        }
        // Parameters are read in module order whatever order they were named in.
        let order: Vec<String> = params
            .iter()
            .map(|p| p.0.clone())
            .filter(|n| read.contains(n))
            .collect();
        for it in &mut items {
            it.at = order.iter().position(|n| *n == read[it.at]).unwrap_or(0);
            it.next = it
                .next
                .and_then(|j| order.iter().position(|n| *n == read[j]));
        }
        let init = init.read_f64(&order);
        WeightMetrics {
            read: order,
            items,
            init,
        }
    }

    /// The metric names, in the order `measure` reports them.
    pub fn names(&self) -> Vec<String> {
        let mut out = vec![];
        for it in &self.items {
            out.push(format!("change_{}", it.name));
            for (f, _) in &it.spans {
                out.push(format!("align_{}_{f}", it.name));
                if it.next.is_some() {
                    out.push(format!("align_weighted_{}_{f}", it.name));
                }
            }
        }
        out
    }

    /// `change_<t>` = ‖W − W₀‖/‖W₀‖; `align_<t>_<f>` = mean over rows of ‖P w_r‖/‖w_r‖, P the
    /// projection on span(f); `align_weighted_<t>_<f>` weights rows by ‖w_r‖ times the norm of
    /// the next layer's column r (|a_r| for one output): the neurons that carry the function.
    pub fn measure(&self, model: &dyn ModelView) -> Vec<(String, f64)> {
        let now = model.read_f64(&self.read);
        let mut out = vec![];
        for it in &self.items {
            let (w, w0) = (&now[it.at], &self.init[it.at]);
            let diff: f64 = w.iter().zip(w0).map(|(a, b)| (a - b).powi(2)).sum();
            let base: f64 = w0.iter().map(|v| v * v).sum();
            out.push((
                format!("change_{}", it.name),
                diff.sqrt() / base.sqrt().max(f64::MIN_POSITIVE),
            ));
            let carried: Option<Vec<f64>> = it.next.map(|j| {
                let a = &now[j];
                let outs = a.len() / it.rows.max(1);
                (0..it.rows)
                    .map(|r| {
                        (0..outs)
                            .map(|o| a[o * it.rows + r].powi(2))
                            .sum::<f64>()
                            .sqrt()
                    })
                    .collect()
            });
            for (f, q) in &it.spans {
                let k = q.len() / it.cols;
                let (mut plain, mut num, mut den) = (0.0, 0.0, 0.0);
                for r in 0..it.rows {
                    let wr = &w[r * it.cols..(r + 1) * it.cols];
                    let norm = wr.iter().map(|v| v * v).sum::<f64>().sqrt();
                    let proj = (0..k)
                        .map(|j| {
                            let qj = &q[j * it.cols..(j + 1) * it.cols];
                            wr.iter().zip(qj).map(|(a, b)| a * b).sum::<f64>().powi(2)
                        })
                        .sum::<f64>()
                        .sqrt();
                    if norm > 0.0 {
                        plain += proj / norm;
                    }
                    if let Some(c) = &carried {
                        num += c[r] * proj;
                        den += c[r] * norm;
                    }
                }
                out.push((
                    format!("align_{}_{f}", it.name),
                    plain / it.rows.max(1) as f64,
                ));
                if carried.is_some() {
                    out.push((
                        format!("align_weighted_{}_{f}", it.name),
                        if den > 0.0 { num / den } else { 0.0 },
                    ));
                }
            }
        }
        out
    }
}

/// An orthonormal basis (rows) of the span of `rows` vectors of length `dim` (Gram-Schmidt,
/// twice for stability; dependent vectors are dropped).
fn basis(values: &[f32], rows: usize, dim: usize) -> Vec<f64> {
    let mut out: Vec<f64> = vec![];
    for r in 0..rows {
        let mut v: Vec<f64> = values[r * dim..(r + 1) * dim]
            .iter()
            .map(|&x| x as f64)
            .collect();
        let scale = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        for _ in 0..2 {
            for q in out.chunks(dim) {
                let d: f64 = v.iter().zip(q).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(q).for_each(|(a, b)| *a -= d * b);
            }
        }
        let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if n > 1e-9 * scale.max(f64::MIN_POSITIVE) {
            out.extend(v.iter().map(|x| x / n));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::trainer::HostTensor;

    /// Fixed weights standing in for a model.
    struct Fixed(Vec<(String, Vec<f64>)>);
    impl ModelView for Fixed {
        fn save(&self, _: &std::path::Path) -> anyhow::Result<()> {
            Ok(())
        }
        fn read(&self, names: &[String]) -> Vec<HostTensor> {
            self.read_f64(names)
                .into_iter()
                .map(|v| HostTensor {
                    values: v.iter().map(|&x| x as f32).collect(),
                })
                .collect()
        }
        fn read_f64(&self, names: &[String]) -> Vec<Vec<f64>> {
            names
                .iter()
                .filter_map(|n| self.0.iter().find(|p| p.0 == *n).map(|p| p.1.clone()))
                .collect()
        }
        fn read_grads(&self, _: &[String], _: &burn::optim::GradientsParams) -> Vec<HostTensor> {
            vec![]
        }
    }

    #[test]
    fn change_and_alignment_of_known_weights() {
        // w: 2 neurons in 3 dims; a: one output. Features span e1 (given twice, and scaled).
        let params = vec![("w".to_string(), vec![2, 3]), ("a".to_string(), vec![1, 2])];
        let gt = GroundTruth::new("dirs", 2, 3, vec![2.0, 0.0, 0.0, 1.0, 0.0, 0.0]).unwrap();
        let init = Fixed(vec![
            ("w".into(), vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
            ("a".into(), vec![1.0, 1.0]),
        ]);
        let m = WeightMetrics::new(&[0], &params, &[gt], &init);
        assert_eq!(
            m.names(),
            ["change_w", "align_w_dirs", "align_weighted_w_dirs"]
        );
        // Neuron 0 on e1 (3x its norm), neuron 1 at 45 degrees; a = [1, 3].
        let now = Fixed(vec![
            ("w".into(), vec![3.0, 0.0, 0.0, 1.0, 1.0, 0.0]),
            ("a".into(), vec![1.0, 3.0]),
        ]);
        let got = m.measure(&now);
        let want = [
            ((4.0f64 + 1.0).sqrt() / 2f64.sqrt()),
            (1.0 + 0.5f64.sqrt()) / 2.0,
            (1.0 * 3.0 + 3.0 * 1.0) / (1.0 * 3.0 + 3.0 * 2f64.sqrt()),
        ];
        for ((name, v), w) in got.iter().zip(want) {
            assert!((v - w).abs() < 1e-12, "{name}: {v} vs {w}");
        }
    }
}
