//! When to snapshot: every N batches, log-spaced steps (theory dynamics happen early), or
//! once per epoch. Step 0 (initialisation) and the final step are always included.

use std::collections::BTreeSet;

/// Which optimizer steps a tracker snapshots (besides step 0 and the last, always kept).
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// Every N steps.
    Every(usize),
    /// About N steps spaced evenly in log(step): dense early, where theory's dynamics are.
    Log(usize),
    /// At the end of every epoch.
    PerEpoch,
}

/// The steps of one run to record, answered without listing them (a run may have
/// millions of steps); 0 = before the first update, `total` = after the last.
pub struct Plan {
    every: usize,
    total: usize,
    log: BTreeSet<usize>,
}

impl Plan {
    pub fn contains(&self, step: usize) -> bool {
        step == 0
            || step == self.total
            || (self.every > 0 && step.is_multiple_of(self.every) && step <= self.total)
            || self.log.contains(&step)
    }

    /// Number of recorded steps.
    pub fn len(&self) -> usize {
        match self.total.checked_div(self.every) {
            Some(q) => q + 1 + usize::from(!self.total.is_multiple_of(self.every)),
            None => {
                let mut s = self.log.clone();
                s.extend([0, self.total]);
                s.len()
            }
        }
    }

    #[cfg(test)]
    fn list(&self) -> Vec<usize> {
        (0..=self.total).filter(|s| self.contains(*s)).collect()
    }
}

impl Schedule {
    /// The steps of a run of `total` steps, `per_epoch` per epoch.
    pub(crate) fn plan(&self, total: usize, per_epoch: usize) -> Plan {
        let mut log = BTreeSet::new();
        let every = match *self {
            Schedule::Every(n) => n.max(1),
            Schedule::PerEpoch => per_epoch.max(1),
            Schedule::Log(count) => {
                if total > 0 && count > 1 {
                    let top = (total as f64).ln();
                    for i in 0..count {
                        let v = (top * i as f64 / (count - 1) as f64).exp().round() as usize;
                        log.insert(v.clamp(1, total));
                    }
                }
                0
            }
        };
        Plan { every, total, log }
    }

    /// `every 5 steps`, `log (50 points)`, `per epoch`.
    pub fn describe(&self) -> String {
        match self {
            Schedule::Every(n) => format!("every {n} steps"),
            Schedule::Log(c) => format!("log ({c} points)"),
            Schedule::PerEpoch => "per epoch".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_include_both_ends() {
        let e = Schedule::Every(3).plan(10, 5);
        assert_eq!(e.list(), vec![0, 3, 6, 9, 10]);
        assert_eq!(e.len(), 5);
        let p = Schedule::PerEpoch.plan(8, 4);
        assert_eq!((p.list(), p.len()), (vec![0, 4, 8], 3));
        let l = Schedule::Log(5).plan(10_000, 100);
        assert_eq!(l.list(), vec![0, 1, 10, 100, 1000, 10_000]);
        assert_eq!(l.len(), 6);
        // Few steps: every step once, no duplicates.
        let small = Schedule::Log(50).plan(4, 1);
        assert_eq!((small.list(), small.len()), (vec![0, 1, 2, 3, 4], 5));
    }
}
