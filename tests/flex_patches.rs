//! The vendored burn-flex patches: a new Flex tensor is allocated once, zeroed, not copied to
//! a second buffer (docs/upstream/burn-flex-empty-copies-every-output.md); large element-wise
//! updates split over threads give the same bits (burn-flex-single-threaded-elementwise.md).

use burn::prelude::*;
use burn::tensor::DType;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Counts the bytes requested from the allocator. The tests share it, so they run in turn.
struct Counting;
static REQUESTED: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        REQUESTED.fetch_add(l.size(), Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        REQUESTED.fetch_add(l.size(), Relaxed);
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        REQUESTED.fetch_add(new, Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_matmul_output_is_allocated_once_and_zeros_are_zero() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dev = Device::flex();
    let n = 512;
    let a = Tensor::<2>::ones([n, n], &dev);
    let b = Tensor::<2>::ones([n, n], &dev).mul_scalar(0.5);
    // Warm up: gemm keeps its packing buffers per thread.
    let _ = a.clone().matmul(b.clone()).into_data();

    let before = REQUESTED.load(Relaxed);
    let c = a.matmul(b);
    let requested = REQUESTED.load(Relaxed) - before;
    let out = n * n * 4;
    assert!(
        requested < 2 * out,
        "a {n} x {n} f32 matmul requested {requested} bytes for a {out}-byte output: \
         FlexTensor::empty copies again (is vendor/burn-flex patched in Cargo.toml?)"
    );
    let values = c.into_data().try_into_vec::<f32>().unwrap();
    assert!(
        values.iter().all(|&v| v == n as f32 * 0.5),
        "matmul values wrong"
    );

    // Every element size the patch allocates for reads back as zeros.
    for dtype in [DType::F64, DType::F32, DType::F16] {
        let z = Tensor::<2>::zeros([3, 5], (&dev, dtype));
        assert_eq!(z.sum().into_scalar::<f64>(), 0.0, "{dtype:?} zeros");
    }
    let z = Tensor::<2, Int>::zeros([3, 5], &dev);
    assert_eq!(z.sum().into_scalar::<i64>(), 0, "int zeros");
}

#[test]
fn large_in_place_updates_split_over_threads_keep_every_bit() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dev = Device::flex();
    // Above the patched 256 Ki-element threshold, as a 784 x 2048 weight is.
    let n = 300_001;
    let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.001).sin()).collect();
    let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.0007).cos()).collect();
    let ta = Tensor::<1>::from_data(TensorData::new(a.clone(), [n]), &dev);
    let tb = Tensor::<1>::from_data(TensorData::new(b.clone(), [n]), &dev);
    // SGD's two passes: `grad * lr` in place, then `param - delta` in place.
    let got = (ta - tb.mul_scalar(0.37))
        .into_data()
        .try_into_vec::<f32>()
        .unwrap();
    let lr = 0.37f64 as f32;
    let want: Vec<f32> = a.iter().zip(&b).map(|(x, g)| x - g * lr).collect();
    assert!(
        got.iter()
            .zip(&want)
            .all(|(g, w)| g.to_bits() == w.to_bits()),
        "a split element-wise update changed values"
    );
}
