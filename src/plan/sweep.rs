//! Hydra's basic sweeper: sweep overrides become a Cartesian product of jobs,
//! first override varying slowest; a repeated key keeps its first position.

use crate::config::overrides::{self, range_items, OvValue, Override, Sweep};
use crate::config::sources::SearchPath;
use crate::config::Node;
use anyhow::{bail, Result};
use indexmap::IndexMap;

/// The override lines of every job, in job-number order.
/// `zip`: groups of keys whose values pair up one to one instead of crossing (ezflt's
/// `--zip lr,batch_size`; Hydra's basic sweeper has no such thing).
pub fn expand(
    cli: &[Override],
    params: Option<&Node>,
    sp: &SearchPath,
    zip: &[Vec<String>],
) -> Result<Vec<Vec<String>>> {
    let mut all: Vec<Override> = Vec::new();
    if let Some(Node {
        v: crate::config::Value::Map(m),
        ..
    }) = params
    {
        for (k, v) in m {
            let text = match &v.v {
                crate::config::Value::Str(s) => s.clone(),
                _ => crate::config::node::py_str(v),
            };
            all.push(overrides::parse(&format!("{k}={text}"))?);
        }
    }
    all.extend(cli.iter().cloned());
    let mut dims: IndexMap<String, Vec<String>> = IndexMap::new();
    for o in &all {
        let key = o.key_element();
        let values: Vec<String> = match &o.value {
            Some(OvValue::Sweep(s)) => {
                if o.is_hydra() {
                    bail!(
                        "Sweeping over Hydra's configuration is not supported: '{}'",
                        o.input_line
                    );
                }
                match s {
                    Sweep::Choice { items, .. } => items.iter().map(|e| format!("{key}={}", e.render())).collect(),
                    Sweep::Range { start, stop, step, ints, .. } => {
                        range_items(*start, *stop, *step, *ints).iter().map(|e| format!("{key}={}", e.render())).collect()
                    }
                    Sweep::Glob { include, exclude } => {
                        let opts = sp.options(&o.key);
                        opts.iter()
                            .filter(|n| include.iter().any(|p| glob_match(p, n)) && !exclude.iter().any(|p| glob_match(p, n)))
                            .map(|n| format!("{key}={n}"))
                            .collect()
                    }
                    Sweep::Interval { .. } => bail!(
                        "BasicSweeper does not support sweep type : INTERVAL_SWEEP ('{}')\n  interval() needs a sampling sweeper; use choice() or range() for a grid.",
                        o.input_line
                    ),
                }
            }
            _ => vec![format!("{key}={}", o.value_str())],
        };
        dims.insert(key, values);
    }
    // Each dimension's values are groups of lines: one line, or one per zipped key.
    let bare = |k: &str| k.trim_start_matches(['+', '~']).to_string();
    for g in zip {
        for k in g {
            if !dims.keys().any(|d| bare(d) == *k) {
                bail!("--zip names '{k}', but no override sets it; zip keys that are swept, e.g. --zip lr,batch_size lr=0.1,0.01 batch_size=32,64");
            }
        }
    }
    let mut groups: Vec<Vec<Vec<String>>> = vec![];
    let mut done: Vec<String> = vec![];
    for (key, values) in &dims {
        if done.contains(key) {
            continue;
        }
        match zip.iter().find(|g| g.contains(&bare(key))) {
            Some(g) => {
                let members: Vec<(&String, &Vec<String>)> =
                    dims.iter().filter(|(k, _)| g.contains(&bare(k))).collect();
                let n = members[0].1.len();
                if let Some((k, v)) = members.iter().find(|(_, v)| v.len() != n) {
                    bail!(
                        "--zip {}: '{}' has {n} values but '{k}' has {}; zipped sweeps pair values one to one",
                        g.join(","),
                        members[0].0,
                        v.len()
                    );
                }
                groups.push(
                    (0..n)
                        .map(|i| members.iter().map(|(_, v)| v[i].clone()).collect())
                        .collect(),
                );
                done.extend(members.iter().map(|(k, _)| (*k).clone()));
            }
            None => groups.push(values.iter().map(|v| vec![v.clone()]).collect()),
        }
    }
    let mut jobs: Vec<Vec<String>> = vec![vec![]];
    for values in &groups {
        let mut next = Vec::with_capacity(jobs.len() * values.len());
        for j in &jobs {
            for v in values {
                let mut nj = j.clone();
                nj.extend(v.iter().cloned());
                next.push(nj);
            }
        }
        jobs = next;
    }
    Ok(jobs)
}

/// fnmatch-style `*` and `?` matching, as Hydra's glob() uses.
pub fn glob_match(pat: &str, s: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let t: Vec<char> = s.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(sp) = star {
            pi = sp + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    fn ovs(v: &[&str]) -> Vec<Override> {
        v.iter().map(|s| overrides::parse(s).unwrap()).collect()
    }
    #[test]
    fn cartesian_first_slowest_and_duplicates() {
        let sp = SearchPath { sources: vec![] };
        let jobs = expand(&ovs(&["a=1,2", "b=x,y"]), None, &sp, &[]).unwrap();
        assert_eq!(
            jobs,
            vec![
                vec!["a=1", "b=x"],
                vec!["a=1", "b=y"],
                vec!["a=2", "b=x"],
                vec!["a=2", "b=y"]
            ]
        );
        let jobs = expand(&ovs(&["seed=1,2", "lr=0.5", "seed=3"]), None, &sp, &[]).unwrap();
        assert_eq!(jobs, vec![vec!["seed=3", "lr=0.5"]]);
        let jobs = expand(&ovs(&["x=range(0,3)", "~y", "n='a,b',c"]), None, &sp, &[]).unwrap();
        assert_eq!(jobs.len(), 6);
        assert_eq!(jobs[0], vec!["x=0", "~y=null", "n='a,b'"]);
        let jobs = expand(
            &ovs(&["x=choice(\"1\",\"2\")", "f=true,false"]),
            None,
            &sp,
            &[],
        )
        .unwrap();
        assert_eq!(jobs[0], vec!["x=1", "f=True"]);
        assert!(expand(&ovs(&["x=interval(0,1)"]), None, &sp, &[]).is_err());
        assert_eq!(expand(&[], None, &sp, &[]).unwrap().len(), 1);
        assert_eq!(
            expand(&ovs(&["x=range(0,0)"]), None, &sp, &[])
                .unwrap()
                .len(),
            0
        );
        // Zipped keys pair up; the others still cross.
        let zip = vec![vec!["lr".to_string(), "b".to_string()]];
        let jobs = expand(&ovs(&["lr=1,2,3", "s=0,1", "b=x,y,z"]), None, &sp, &zip).unwrap();
        assert_eq!(jobs.len(), 6);
        assert_eq!(jobs[0], vec!["lr=1", "b=x", "s=0"]);
        assert_eq!(jobs[5], vec!["lr=3", "b=z", "s=1"]);
        let e = expand(&ovs(&["lr=1,2", "b=x,y,z"]), None, &sp, &zip)
            .unwrap_err()
            .to_string();
        assert!(e.contains("pair values one to one"), "{e}");
        assert!(expand(&ovs(&["lr=1,2"]), None, &sp, &zip).is_err());
    }
    #[test]
    fn globbing() {
        assert!(glob_match("m*", "mlp"));
        assert!(!glob_match("c*", "mlp"));
        assert!(glob_match("*", "x"));
    }
}
