//! The library in-process, no binary: a `FeatureTracker` in a hand-written loop, the
//! `Trainer` with the built-in callbacks, the `Archive` reader and the plot functions.

mod common;

use burn::module::{Module, Param};
use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use burn::tensor::Distribution;
use ezflt::callbacks::{Checkpoints, FeatureTracking, MetricsFiles};
use ezflt::plots::{self, At, Stat, Style};
use ezflt::{
    Archive, Dataset, FeatureTracker, GroundTruth, Net, Optimizer, Schedule, Split, Task,
    TrackOptions, Trainer,
};

#[derive(Module, Debug)]
struct Dense {
    weight: Param<Tensor<2>>,
}

#[derive(Module, Debug)]
struct Two {
    first: Dense,
    second: Dense,
}

impl Net for Two {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = x.matmul(self.first.weight.val().transpose()).tanh();
        h.matmul(self.second.weight.val().transpose())
    }
}

fn two(dim: usize, width: usize, out: usize, device: &Device) -> Two {
    let w = |o: usize, i: usize| Dense {
        weight: Param::from_tensor(Tensor::random(
            [o, i],
            Distribution::Normal(0.0, 0.3),
            device,
        )),
    };
    Two {
        first: w(width, dim),
        second: w(out, width),
    }
}

fn host(t: Tensor<2>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

/// Labels: which of the first `classes` coordinates is largest; deterministic inputs.
fn split(n: usize, dim: usize, classes: usize, offset: usize) -> Split {
    let x: Vec<f32> = (0..n * dim)
        .map(|i| (((i + offset) * 7919 % 1000) as f32 / 500.0) - 1.0)
        .collect();
    let y = (0..n)
        .map(|r| {
            let row = &x[r * dim..r * dim + classes];
            (0..classes)
                .max_by(|a, b| row[*a].total_cmp(&row[*b]))
                .unwrap() as i64
        })
        .collect();
    Split::new(x, y, n)
}

#[test]
fn a_hand_written_loop_records_what_the_model_held_at_each_scheduled_step() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("loop");
    let device = Device::flex().autodiff();
    device.seed(3);
    let (dim, n, batch, epochs) = (6, 40, 10, 3);
    let mut model = two(dim, 5, 1, &device);
    let x = Tensor::<2>::random([n, dim], Distribution::Normal(0.0, 1.0), &device);
    let y = x.clone().narrow(1, 0, 1);
    let truth =
        GroundTruth::new("e0", 1, dim, (0..dim).map(|i| f32::from(i == 0)).collect()).unwrap();
    let mut tracker = FeatureTracker::new(
        &dir,
        TrackOptions::default()
            .layers(["first.weight"])
            .gradients(true)
            .schedule(Schedule::Every(2))
            .ground_truth(truth),
    )
    .unwrap();
    let init = host(model.first.weight.val());
    tracker.start(&model, epochs, n / batch).unwrap();
    let mut optim = SgdConfig::new().init();
    let mut held = vec![(0i64, init)];
    for epoch in 0..epochs {
        tracker.on_epoch_start(epoch);
        for b in 0..n / batch {
            let out = model.forward(x.clone().narrow(0, b * batch, batch));
            let loss = (out - y.clone().narrow(0, b * batch, batch))
                .powf_scalar(2.0)
                .mean();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            tracker.on_after_backward(&model, &grads).unwrap();
            model = optim.step(0.05, model, grads);
            tracker.on_batch_end(&model, b).unwrap();
            held.push((tracker.step() as i64, host(model.first.weight.val())));
        }
    }
    tracker.finish(&model).unwrap();

    let f = tracker.get_feature("first.weight").unwrap();
    // Every 2 steps of 12, plus step 0: 0, 2, ..., 12.
    assert_eq!(f.steps(), &[0, 2, 4, 6, 8, 10, 12]);
    assert_eq!(f.epochs(), &[0, 0, 0, 1, 1, 2, 2]);
    assert_eq!(f.shape(), &[5, dim]);
    for s in f.iter() {
        let want = &held.iter().find(|h| h.0 == s.step).unwrap().1;
        assert_eq!(s.values, want.as_slice(), "step {}", s.step);
    }
    assert_eq!(f.latest().unwrap().step, 12);
    assert_eq!(f.at_epoch(1).unwrap().step, 8);
    assert!(f.at_step(3).is_none());
    let t: Tensor<2> = f.tensor(0, &Device::flex()).unwrap();
    assert_eq!(t.dims(), [5, dim]);

    let mut ar = Archive::open(&dir).unwrap();
    assert_eq!(ar.names(), &["first.weight".to_string()]);
    let g = ar.gradient("first.weight").unwrap();
    assert_eq!(
        g.steps(),
        &[0, 2, 4, 6, 8, 10],
        "gradients at the scheduled steps before the update"
    );
    let a = ar.alignment("first.weight", "e0").unwrap();
    assert_eq!(a.shape(), &[5, 1]);
    // The alignment is the cosine of each row with e0, recomputed here from the weights.
    let last = f.latest().unwrap().values;
    for r in 0..5 {
        let row = &last[r * dim..(r + 1) * dim];
        let cos = row[0] / row.iter().map(|v| v * v).sum::<f32>().sqrt();
        let stored = a.latest().unwrap().values[r];
        assert!((cos - stored).abs() < 1e-5, "row {r}: {cos} vs {stored}");
    }
    assert_eq!(ar.ground_truth().unwrap()[0].name, "e0");

    let style = Style::default();
    let evo = plots::evolution(&dir, "first.weight", Stat::Std, &style).unwrap();
    let heat = plots::heatmap(&dir, "first.weight", At::Epoch(1), &style).unwrap();
    assert!(
        heat.ends_with("heatmap_first.weight_step8.png"),
        "{}",
        heat.display()
    );
    let al = plots::alignment(&dir, "first.weight", &style).unwrap();
    for p in [evo, heat].iter().chain(&al) {
        assert!(
            std::fs::metadata(p).unwrap().len() > 5_000,
            "{}",
            p.display()
        );
    }
    let e = plots::comparison(&dir, "first.weight", &[7], &style).unwrap_err();
    assert!(e.to_string().contains("epoch 7 has no snapshot"), "{e}");
}

#[test]
fn the_tracker_says_what_is_wrong_when_misused() {
    let tmp = tempfile::tempdir().unwrap();
    let device = Device::flex().autodiff();
    let model = two(4, 3, 1, &device);
    let mut t =
        FeatureTracker::new(tmp.path(), TrackOptions::default().layers(["frist.weight"])).unwrap();
    let e = t.on_batch_end(&model, 0).unwrap_err().to_string();
    assert!(e.contains("before training"), "{e}");
    let e = t.start(&model, 1, 1).unwrap_err().to_string();
    assert!(e.contains("Did you mean 'first.weight'?"), "{e}");
    let e = GroundTruth::new("g", 2, 3, vec![0.0; 5])
        .unwrap_err()
        .to_string();
    assert!(e.contains("5 values for 2 x 3"), "{e}");
}

/// 300 training and 150 test samples labelled by their largest coordinate.
fn argmax(dim: usize, classes: usize) -> Dataset {
    Dataset::new(
        "argmax",
        &[dim],
        Task::Classify { classes },
        split(300, dim, classes, 0),
        split(150, dim, classes, 7),
    )
}

#[test]
fn the_trainer_fits_a_user_net_with_the_built_in_callbacks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fit");
    let (dim, classes) = (6, 3);
    let data = argmax(dim, classes);
    let device = Device::flex();
    device.seed(1);
    let model = two(dim, 16, classes, &device.clone().autodiff());
    let fitted = Trainer::new(model, Optimizer::sgd(0.5))
        .batch_size(30)
        .device(device)
        .callback(MetricsFiles::new(&dir, 5).unwrap())
        .callback(Checkpoints::new(&dir, 0).unwrap())
        .callback(
            FeatureTracking::new(&dir, TrackOptions::default().schedule(Schedule::PerEpoch))
                .unwrap(),
        )
        .fit(&data, 8, None)
        .unwrap();
    assert_eq!(fitted.outcome.steps, 80);
    let acc = fitted
        .outcome
        .last_eval
        .iter()
        .find(|m| m.0 == "test_acc")
        .unwrap()
        .1;
    assert!(acc > 0.6, "a learnable task is learned: test_acc {acc}");
    // The returned model is the one the final snapshot holds.
    let f = Archive::open(&dir)
        .unwrap()
        .feature("first.weight")
        .unwrap();
    assert_eq!(f.steps(), &[0, 10, 20, 30, 40, 50, 60, 70, 80]);
    assert_eq!(
        f.latest().unwrap().values,
        host(fitted.model.first.weight.val()).as_slice()
    );
    let rows = common::rows(&dir);
    assert!(rows.iter().any(|r| r.get("test_acc").is_some()));
    assert!(dir.join("checkpoint/model.bpk").is_file());
    assert!(plots::curves(&dir, &Style::default()).unwrap().is_file());

    // No evaluation split: nothing evaluated, nothing reported as if it had been.
    let mut no_test = data.clone();
    no_test.test = Split::default();
    let dir2 = tmp.path().join("no_test");
    let out = Trainer::new(
        two(dim, 4, classes, &Device::flex().autodiff()),
        Optimizer::adam(0.01),
    )
    .callback(MetricsFiles::new(&dir2, 5).unwrap())
    .fit(&no_test, 1, None)
    .unwrap();
    assert!(out.outcome.last_eval.is_empty());
    assert!(common::rows(&dir2)
        .iter()
        .all(|r| r.get("test_loss").is_none()));
}

/// `Trainer::stop_at` ends training at the first evaluation that reaches the target, and
/// `Trainer::weight_metrics` reports how far a layer moved from its initialisation.
#[test]
fn the_trainer_stops_at_a_target_and_measures_weight_change() {
    let (dim, classes) = (6, 3);
    let data = argmax(dim, classes);
    let device = Device::flex();
    device.seed(1);
    let fitted = Trainer::new(
        two(dim, 16, classes, &device.clone().autodiff()),
        Optimizer::sgd(0.5),
    )
    .batch_size(30)
    .device(device)
    .stop_at("test_acc", 0.8)
    .weight_metrics(["first.weight"])
    .fit(&data, 200, None)
    .unwrap();
    let o = &fitted.outcome;
    let get = |k: &str| o.last_eval.iter().find(|m| m.0 == k).map(|m| m.1);
    assert!(get("test_acc").unwrap() >= 0.8, "{:?}", o.last_eval);
    assert!(
        o.epochs < 200 && o.steps == o.epochs * 10,
        "{} epochs",
        o.epochs
    );
    let why = o.stopped_early.as_deref().expect("stopped early");
    assert!(why.contains("test_acc") && why.contains("0.8"), "{why}");
    let change = get("change_first.weight").expect("the weight metric");
    assert!(change > 0.0 && change.is_finite(), "{change}");

    // A metric the run does not evaluate is named, with what it does evaluate.
    let e = Trainer::new(
        two(dim, 4, classes, &Device::flex().autodiff()),
        Optimizer::sgd(0.1),
    )
    .stop_at("test_accuracy", 0.9)
    .fit(&data, 1, None)
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("'test_accuracy'") && e.contains("Did you mean 'test_acc'"),
        "{e}"
    );
}

#[test]
fn bad_data_is_refused_before_training_with_what_to_fix() {
    let device = Device::flex();
    let bad_shape = Dataset::new(
        "d",
        &[4],
        Task::Binary,
        Split::new(vec![0.0; 10], vec![0, 1, 0], 3),
        Split::default(),
    );
    let e = Trainer::new(
        two(4, 2, 1, &device.clone().autodiff()),
        Optimizer::sgd(0.1),
    )
    .fit(&bad_shape, 1, None)
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("n=3 but 10 input values") && e.contains("n x 4"),
        "{e}"
    );
    let bad_label = Dataset::new(
        "d",
        &[2],
        Task::Classify { classes: 2 },
        Split::new(vec![0.0; 4], vec![0, 5], 2),
        Split::default(),
    );
    let e = Trainer::new(two(2, 2, 2, &device.autodiff()), Optimizer::sgd(0.1))
        .fit(&bad_label, 1, None)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("labels hold 5, outside 0..1"), "{e}");
}

/// `Trainer::init_from` sets a user's net from a `.safetensors` state dict by name, and
/// `Trainer::freeze` keeps a layer as loaded while the rest trains.
#[test]
fn the_trainer_starts_from_a_state_dict_and_freezes_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let (dim, width, classes) = (6, 8, 3);
    let data = Dataset::new(
        "argmax",
        &[dim],
        Task::Classify { classes },
        split(120, dim, classes, 0),
        split(60, dim, classes, 7),
    );
    let first: Vec<f32> = (0..width * dim).map(|i| (i as f32 * 0.37).sin()).collect();
    let second: Vec<f32> = (0..classes * width)
        .map(|i| (i as f32 * 0.11).cos())
        .collect();
    let bytes = |v: &Vec<f32>| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (b1, b2) = (bytes(&first), bytes(&second));
    let views = [
        (
            "first.weight",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![width, dim], &b1)
                .unwrap(),
        ),
        (
            "second.weight",
            safetensors::tensor::TensorView::new(
                safetensors::Dtype::F32,
                vec![classes, width],
                &b2,
            )
            .unwrap(),
        ),
    ];
    let file = tmp.path().join("w.safetensors");
    std::fs::write(&file, safetensors::serialize(views, None).unwrap()).unwrap();
    let device = Device::flex();
    let fitted = Trainer::new(
        two(dim, width, classes, &device.clone().autodiff()),
        Optimizer::sgd(0.5),
    )
    .batch_size(30)
    .device(device.clone())
    .init_from(&file)
    .freeze(["first.*"])
    .fit(&data, 3, None)
    .unwrap();
    assert_eq!(
        host(fitted.model.first.weight.val()),
        first,
        "frozen as loaded"
    );
    assert_ne!(host(fitted.model.second.weight.val()), second, "trained");
    let e = Trainer::new(
        two(dim, width, classes, &device.clone().autodiff()),
        Optimizer::sgd(0.5),
    )
    .device(device)
    .freeze(["thrid.*"])
    .fit(&data, 1, None)
    .err()
    .expect("an unknown glob is an error");
    assert!(
        e.to_string()
            .contains("matches no parameter; the model has: first.weight, second.weight"),
        "{e}"
    );
}
