//! Property tests over the parsers that read untrusted input (override grammar, YAML and
//! interpolation, `.npz`/`.npy`, IDX, `.wandb`): random and mutated inputs never panic.
//! Seeds are real inputs (the built-in `conf/`, README overrides, files ezflt writes).

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::path::Path;

/// Cases per target, random and mutated each; the generator is seeded, so every run
/// feeds the same inputs (a failure found once is found again).
const CASES: u32 = 4000;

/// Flips, overwrites, inserts and truncates bytes of a seed.
#[derive(Debug, Clone)]
struct Mutation {
    seed: usize,
    edits: Vec<(usize, u8, u8)>,
    cut: Option<usize>,
}

fn mutation(seeds: usize) -> impl Strategy<Value = Mutation> {
    (
        0..seeds,
        prop::collection::vec((any::<usize>(), 0u8..3, any::<u8>()), 0..6),
        prop::option::of(any::<usize>()),
    )
        .prop_map(|(seed, edits, cut)| Mutation { seed, edits, cut })
}

fn apply(seed: &[u8], m: &Mutation) -> Vec<u8> {
    let mut v = seed.to_vec();
    for &(pos, kind, byte) in &m.edits {
        if v.is_empty() {
            v.push(byte);
            continue;
        }
        let i = pos % v.len();
        match kind {
            0 => v[i] ^= byte | 1,
            1 => v[i] = byte,
            _ => v.insert(i, byte),
        }
    }
    if let Some(c) = m.cut {
        v.truncate(c % (v.len() + 1));
    }
    v
}

/// Runs `check` on `CASES` random byte strings and `CASES` mutated seeds; says how many ran.
fn fuzz(name: &str, seeds: &[Vec<u8>], check: impl Fn(&[u8])) {
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = || TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(config.clone(), rng());
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..512), |b| {
            check(&b);
            Ok(())
        })
        .unwrap();
    let mut runner = TestRunner::new_with_rng(config, rng());
    runner
        .run(&mutation(seeds.len()), |m| {
            check(&apply(&seeds[m.seed], &m));
            Ok(())
        })
        .unwrap();
    for s in seeds {
        check(s);
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "fuzz {name}: {} inputs ({} random, {} mutated from {} seeds), no panic",
        2 * CASES as usize + seeds.len(),
        CASES,
        CASES as usize + seeds.len(),
        seeds.len()
    );
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every YAML file of the built-in config tree.
fn conf_seeds() -> Vec<Vec<u8>> {
    fn walk(dir: &Path, out: &mut Vec<Vec<u8>>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "yaml") {
                out.push(std::fs::read(&p).unwrap());
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = vec![];
    walk(&root.join("conf"), &mut out);
    walk(&root.join("experiments"), &mut out);
    out
}

#[test]
fn override_parser_never_panics() {
    let seeds: Vec<Vec<u8>> = [
        "lr=1e-3",
        "model=two_layer_cnn",
        "+extra.key=[1,{a: 2}]",
        "++seed=3",
        "~model",
        "db@backup=mysql",
        "name='a,b'",
        "x=range(0,10,2)",
        "y=choice(a,b)",
        "z=glob(m*,exclude=x)",
        "s=sort(3,1,2,reverse=true)",
        "t=shuffle(1,2,3)",
        "u=tag(a,b,interval(0,1))",
        "v=int(float(\"3\"))",
        "path=c:\\foo",
        "x=a\\,b",
        "data.path=~/data/mnist",
        "model.activation='relu^2'",
        "key=${oc.env:HOME,x}",
        "x=[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    fuzz("override parser", &seeds, |b| {
        let _ = crate::config::overrides::parse(&text(b));
        let _ = crate::config::overrides::parse_value(&text(b));
    });
}

#[test]
fn yaml_loader_and_interpolation_never_panic() {
    let now = chrono::Local::now();
    fuzz("YAML + interpolation", &conf_seeds(), |b| {
        let Ok(node) = crate::config::yaml::load(&text(b), "fuzz.yaml") else {
            return;
        };
        let _ = crate::config::yaml::dump(&node);
        let r = crate::config::interp::Resolver::new(&node, now, true);
        if let Some(m) = node.as_map() {
            for k in m.keys() {
                let _ = r.resolve_path(std::slice::from_ref(k));
            }
        }
    });
}

#[test]
fn idx_reader_never_panics() {
    let mut image = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3];
    image.extend(0..18u8);
    let labels = vec![0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3, 4];
    let mut gz = vec![];
    {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::fast());
        e.write_all(&image).unwrap();
        e.finish().unwrap();
    }
    fuzz("IDX reader", &[image, labels, gz], |b| {
        let _ = crate::data::files::parse_idx(b.to_vec(), Path::new("fuzz-idx"));
    });
}

#[test]
fn npz_and_npy_readers_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    // Seeds: an archive as the tracker writes it, and plain .npy arrays of several dtypes.
    let npz = dir.path().join("seed.npz");
    let mut w = crate::artifacts::npz::NpzWriter::create(&npz).unwrap();
    w.i64_array("step", &[0, 1, 2]).unwrap();
    let data: Vec<u8> = (0..12u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
    w.array_from("w", "<f4", &[3, 2, 2], 4, &mut &data[..])
        .unwrap();
    w.string("metadata", "{\"layers\": [\"w\"]}").unwrap();
    w.finish().unwrap();
    let mut seeds = vec![std::fs::read(&npz).unwrap()];
    for (descr, item) in [("<f4", 4), ("<f8", 8), ("<i8", 8), ("|u1", 1), ("<f2", 2)] {
        let mut v = crate::artifacts::npz::npy_header(descr, &[2, 3]);
        v.extend(std::iter::repeat_n(1u8, 6 * item));
        seeds.push(v);
    }
    let (npz_path, npy_path) = (dir.path().join("f.npz"), dir.path().join("f.npy"));
    fuzz(".npz/.npy readers", &seeds, |b| {
        std::fs::write(&npz_path, b).unwrap();
        std::fs::write(&npy_path, b).unwrap();
        let _ = crate::data::files::read_arrays(&npz_path);
        let _ = crate::data::files::read_arrays(&npy_path);
        if let Ok(mut a) = crate::artifacts::npz::Archive::open(&npz_path) {
            for name in a.names() {
                let _ = a.shape(&name);
                let _ = a.read(&name);
                let _ = a.read_i64(&name);
                let _ = a.read_string(&name);
            }
        }
    });
}

#[test]
#[cfg(feature = "wandb")]
fn wandb_record_reader_never_panics() {
    use crate::wandb::records::{self, HistoryRecord, HistoryStep, Item, LogWriter, RecordType};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("seed.wandb");
    let mut w = LogWriter::create(&p).unwrap();
    for s in 0..40 {
        w.write(RecordType::History(HistoryRecord {
            item: vec![
                Item::new("_step", s.to_string()),
                Item::new("loss", format!("{}", 1.0 / (s as f64 + 1.0))),
            ],
            step: Some(HistoryStep { num: s }),
        }))
        .unwrap();
    }
    drop(w);
    let seed = std::fs::read(&p).unwrap();
    fuzz(".wandb reader", &[seed], |b| {
        if let Ok(parsed) = records::parse(b, 0) {
            let _ = records::parse(b, parsed.end);
        }
    });
}
