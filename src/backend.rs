//! Picks the burn `Device` from `backend` and `device` settings at run time, sizes the
//! thread pools, and says how to rebuild when a backend was not compiled in.

use anyhow::{bail, Result};
use burn::prelude::Device;

/// The chosen device, and how to describe it in summaries and logs.
#[derive(Clone)]
pub struct Chosen {
    pub device: Device,
    pub backend: &'static str,
    pub name: String,
    /// CPU threads the backend computes with, as it reports them (summaries record it, so
    /// a sweep's thread policy can be seen).
    pub threads: usize,
}

const TCH_HOWTO: &str = "this ezflt was built without LibTorch. Build it with \
`bash scripts/setup-torch.sh && scripts/cargo-tch build --release` (PyTorch 2.9.0 from PyPI), \
or use backend=flex device=cpu";

/// Requested CUDA ordinal: `cuda` = 0, `cuda:N` = N; None for cpu/auto.
fn cuda_index(device: &str) -> Result<Option<usize>> {
    match device {
        "cuda" => Ok(Some(0)),
        d if d.starts_with("cuda:") => match d[5..].parse() {
            Ok(i) => Ok(Some(i)),
            Err(_) => bail!("device '{d}': expected cuda:N with N a GPU index, e.g. cuda:0"),
        },
        "cpu" | "auto" => Ok(None),
        d => bail!("device '{d}': expected cpu, cuda, cuda:N or auto"),
    }
}

/// Below this much work per step (batch size x parameters), Flex runs faster on one thread
/// than on two: measured on 2 cores with MLP 784-W-10 (README, "Threads"): 2.6e7 (512 x 64)
/// was slower on two, 1.0e8 (512 x 256, 2048 x 64) faster.
const FLEX_PARALLEL_WORK: u64 = 50_000_000;

/// Threads Flex uses when `threads` is not set: one for small steps, where splitting the
/// work across rayon threads costs more than it saves, else every core.
pub fn flex_auto_threads(work: u64) -> usize {
    if work < FLEX_PARALLEL_WORK {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// Flex (pure Rust) is the default backend and runs on the CPU only. `work`: batch size x
/// parameters, for the automatic thread count. A given `threads` is the most Flex uses: a
/// small step stays on one thread however many are allowed (as PyTorch runs an op below its
/// grain size on one), so more threads never make a step slower.
fn flex(threads: Option<usize>, work: u64) -> Chosen {
    let n = match threads {
        None => flex_auto_threads(work),
        Some(t) if work < FLEX_PARALLEL_WORK => t.min(1),
        Some(t) => t,
    };
    // Only the first call sizes rayon's global pool; later ones are no-ops. The calling
    // thread is one of its workers: a parallel op then runs on it (inline on one thread)
    // instead of being handed to a pool thread and waited for, a handoff that cost a batched
    // sweep's step more than its matmuls.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .use_current_thread()
        .build_global();
    Chosen {
        device: Device::flex(),
        backend: "flex",
        name: "cpu".into(),
        threads: rayon::current_num_threads(),
    }
}

#[cfg(feature = "tch")]
#[allow(deprecated)]
fn libtorch(cuda: Option<usize>, threads: Option<usize>) -> Result<Chosen> {
    let n = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    tch::set_num_threads(n as i32);
    match cuda {
        None => Ok(Chosen {
            device: Device::libtorch(),
            backend: "tch",
            name: "cpu".into(),
            threads: tch::get_num_threads() as usize,
        }),
        Some(i) => {
            let count = tch::Cuda::device_count() as usize;
            if i >= count {
                bail!(
                    "device cuda:{i} requested, but LibTorch sees {count} CUDA device(s); \
                     use device=cpu, or check the driver and CUDA_VISIBLE_DEVICES"
                );
            }
            Ok(Chosen {
                device: Device::libtorch_cuda(i),
                backend: "tch",
                name: format!("cuda:{i}"),
                threads: tch::get_num_threads() as usize,
            })
        }
    }
}

#[cfg(feature = "tch")]
fn cuda_visible() -> bool {
    tch::Cuda::device_count() > 0
}

#[cfg(not(feature = "tch"))]
fn libtorch(_cuda: Option<usize>, _threads: Option<usize>) -> Result<Chosen> {
    bail!("backend=tch: {TCH_HOWTO}")
}

#[cfg(not(feature = "tch"))]
fn cuda_visible() -> bool {
    false
}

/// The choice errors that need no device: run before any directory is created.
pub fn check(backend: &str, device: &str) -> Result<()> {
    let cuda = cuda_index(device)?;
    match (backend, cuda) {
        ("flex", Some(i)) => bail!(
            "device=cuda:{i} with backend=flex: Flex runs on the CPU only; \
             use backend=tch for CUDA (or device=cpu)"
        ),
        ("tch", _) if !cfg!(feature = "tch") => bail!("backend=tch: {TCH_HOWTO}"),
        ("auto", Some(_)) if !cfg!(feature = "tch") => {
            bail!("device={device}: CUDA needs the LibTorch backend, and {TCH_HOWTO}")
        }
        _ => Ok(()),
    }
}

/// `backend`: flex | tch | auto; `device`: cpu | cuda | cuda:N | auto.
/// auto = LibTorch on CUDA when built with tch and a GPU is visible, else Flex: on the CPU
/// Flex is ahead of LibTorch, or within 2%, at every size of the README's table, on one
/// thread and on two.
/// `threads`: None = automatic (Flex: by `work`, batch size x parameters; LibTorch: all cores).
pub fn choose(backend: &str, device: &str, threads: Option<usize>, work: u64) -> Result<Chosen> {
    check(backend, device)?;
    let cuda = cuda_index(device)?;
    match backend {
        "flex" => Ok(flex(threads, work)),
        "tch" => {
            if device == "auto" && cuda_visible() {
                return libtorch(Some(0), threads);
            }
            libtorch(cuda, threads)
        }
        "auto" => {
            if cuda.is_some() {
                return libtorch(cuda, threads);
            }
            if device == "auto" && cuda_visible() {
                return libtorch(Some(0), threads);
            }
            Ok(flex(threads, work))
        }
        other => bail!("backend '{other}': expected flex, tch or auto"),
    }
}
