//! A batch of sweep jobs that share a shape, trained as one stacked model in this process:
//! each member still writes its own complete run directory. Jobs that cannot batch run alone.

use super::{preflight, run_callbacks, stop_flag, Prepared, RunResult};
use crate::artifacts::run::Batched;
use crate::config::Node;
use crate::model::stacked::{self, Stacked, WithStacked};
use crate::train::batched::{self, Member};
use crate::train::callbacks::Progress;
use crate::train::Outcome;
use anyhow::Result;
use std::path::{Path, PathBuf};

/// One job of a batch: its resolved config, directory, sweep number and log file.
pub struct BatchJob<'j> {
    pub job: &'j Node,
    pub dir: &'j Path,
    pub num: usize,
    pub log: Option<PathBuf>,
}

/// Why these jobs (already through their preflight) cannot train as one batch, or None.
fn unbatchable(checked: &[preflight::Checked]) -> Option<String> {
    let first = checked.first()?;
    let name = first.spec.model.name().to_string();
    for c in checked {
        if c.spec.model.builtin().is_none() {
            return Some(format!(
                "model={} is registered by the program, and only built-in models batch",
                c.spec.model.name()
            ));
        }
        if c.spec.model.name() != name {
            return Some("the jobs use different models".into());
        }
        if (&c.spec.backend, &c.spec.device, c.spec.threads, c.spec.f64)
            != (
                &first.spec.backend,
                &first.spec.device,
                first.spec.threads,
                first.spec.f64,
            )
        {
            return Some("the jobs differ in backend, device, threads or dtype".into());
        }
    }
    None
}

/// Trains `jobs` as one batch when they can, else one after another; returns each job's
/// result in order, and the one line that says why they did not batch, if they did not.
pub fn run_batch(jobs: &[BatchJob], quiet: bool) -> (Vec<Result<RunResult>>, Option<String>) {
    // Alone, each job reuses the preflight (and data) already done for it, in job order.
    let alone = |why: Option<String>, checked: Vec<preflight::Checked>| {
        let mut checked = checked.into_iter();
        let results = jobs
            .iter()
            .map(|j| super::run(j.job, j.dir, j.log.clone(), quiet, None, checked.next()))
            .collect();
        (results, why)
    };
    if jobs.len() < 2 {
        return alone(None, vec![]);
    }
    let mut checked = vec![];
    for j in jobs {
        match preflight::check(j.job) {
            Ok(c) => checked.push(c),
            // The job's own run reports its error.
            Err(_) => return alone(Some("a job's settings do not check".into()), checked),
        }
    }
    if let Some(why) = unbatchable(&checked) {
        return alone(Some(why), checked);
    }
    // Every member's data, loaded with its own seed, before the shared device is chosen.
    for i in 0..checked.len() {
        let c = &mut checked[i];
        if c.data.is_none() {
            match c.spec.data.load(c.spec.data_seed) {
                Ok(d) => c.data = Some(d),
                Err(_) => return alone(Some("a job's data does not load".into()), checked),
            }
        }
    }
    // The launcher's grouping reads configs; the models' parameter shapes decide.
    let shapes: Vec<_> = checked
        .iter()
        .map(|c| {
            let ds = c.data.as_ref().expect("loaded above");
            let io = crate::model::ModelIo {
                sample_shape: ds.sample_shape.clone(),
                task: ds.task,
            };
            c.spec.model.shapes(&io).ok()
        })
        .collect();
    if shapes.iter().any(|s| s.is_none() || *s != shapes[0]) {
        return alone(
            Some("the jobs' models differ in parameter shapes".into()),
            checked,
        );
    }
    let chosen = {
        let c = &checked[0];
        let ds = c.data.as_ref().expect("loaded above");
        super::choose_backend(&c.spec, ds, c.params, jobs.len())
    };
    let chosen = match chosen {
        Ok(ch) => ch,
        Err(_) => return alone(None, checked),
    };
    let mut prepared = vec![];
    for (j, c) in jobs.iter().zip(checked) {
        match Prepared::new(j.job, j.dir, j.log.clone(), false, c, Some(&chosen)) {
            Ok(p) => prepared.push(p),
            Err(_) => return alone(Some("a job could not be prepared".into()), vec![]),
        }
    }
    {
        let specs: Vec<_> = prepared.iter().map(|p| &p.train).collect();
        let data: Vec<_> = prepared.iter().map(|p| &p.ds).collect();
        if let Some(why) = batched::unsupported(&specs, &data) {
            let results = prepared
                .into_iter()
                .map(|p| {
                    let log = p.log.clone();
                    let r = p.train_alone(quiet, None);
                    if let (Err(e), Some(l)) = (&r, &log) {
                        super::log_error(l, e);
                    }
                    r
                })
                .collect();
            return (results, Some(why));
        }
    }
    let info = Batched {
        group: jobs[0].num,
        members: jobs.iter().map(|j| j.num).collect(),
    };
    let outcomes = train_together(&mut prepared, &chosen.device, quiet);
    let results = match outcomes {
        Ok(outcomes) => prepared
            .into_iter()
            .zip(outcomes.into_iter().map(Ok))
            .collect::<Vec<_>>(),
        Err(e) => {
            let msg = format!("{e:#}");
            prepared
                .into_iter()
                .map(|p| (p, Err(anyhow::anyhow!("{msg}"))))
                .collect()
        }
    }
    .into_iter()
    .map(|(p, o)| {
        let log = p.log.clone();
        let r = p.finish_with(o, Some(info.clone()));
        if let (Err(e), Some(l)) = (&r, &log) {
            super::log_error(l, e);
        }
        r
    })
    .collect();
    (results, None)
}

/// Builds each member's model from its seed, stacks them, and trains them together.
fn train_together(
    prepared: &mut [Prepared],
    device: &burn::prelude::Device,
    quiet: bool,
) -> Result<Vec<Outcome>> {
    let io = prepared[0].io();
    let specs: Vec<(crate::model::ModelSpec, u64)> = prepared
        .iter()
        .map(|p| {
            let m = p.spec.model.builtin().expect("checked built-in").clone();
            (m, p.spec.seed)
        })
        .collect();
    // The launcher groups jobs with one `init_from` and `freeze` (batched::unsupported checks).
    let weights = prepared[0].train.weights.clone();
    let members: Vec<Member> = prepared
        .iter_mut()
        .map(|p| {
            let callbacks = run_callbacks(
                &p.dir,
                &p.train,
                p.time_offset,
                Progress::new(p.log.as_deref(), quiet),
                &mut p.best,
                p.tracker.take(),
                p.wandb.as_ref(),
            );
            Member {
                spec: &p.train,
                data: &p.ds,
                callbacks,
            }
        })
        .collect();
    struct Fit<'a> {
        members: Vec<Member<'a>>,
        device: burn::prelude::Device,
    }
    impl WithStacked for Fit<'_> {
        type Out = Result<Vec<Outcome>>;
        fn run<S: Stacked>(self, model: S) -> Self::Out {
            batched::fit(self.members, model, self.device, stop_flag())
        }
    }
    let refs: Vec<(&crate::model::ModelSpec, u64)> = specs.iter().map(|(m, s)| (m, *s)).collect();
    stacked::build(
        &refs,
        &weights,
        &io,
        device,
        Fit {
            members,
            device: device.clone(),
        },
    )?
}
