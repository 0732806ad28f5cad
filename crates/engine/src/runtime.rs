//! libtorch at run time: make the CUDA backend available when the venv has it, and describe devices.

use std::sync::Once;

use torchlight_cli::Device;

static CUDA_INIT: Once = Once::new();

/// Loads `libtorch_cuda.so` so that tch sees CUDA. Rust links with `--as-needed`, which drops the CUDA
/// library from the binary because no symbol of it is referenced; without this, a GPU box silently runs
/// on CPU. On a CPU-only libtorch the load fails cleanly and everything runs on CPU.
/// Call before any other tch function; repeated calls do nothing.
pub fn init() {
    CUDA_INIT.call_once(|| {
        // SAFETY: dlopen with a constant C string; the handle is deliberately kept for the process lifetime.
        unsafe {
            let handle = libc::dlopen(c"libtorch_cuda.so".as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL);
            if handle.is_null() {
                let _ = libc::dlerror();
            }
        }
    });
}

/// libgomp (libtorch's OpenMP runtime) keeps its idle threads spinning for a while after every parallel
/// region. Beside torchlight's own decode and scan threads that spinning takes the cores they need, many times
/// over on a small machine. libgomp reads the policy once, when it is loaded before `main`, so commands that overlap their own threads with libtorch
/// re-execute themselves once with `OMP_WAIT_POLICY=PASSIVE`; a policy the user set is left alone.
pub fn ensure_passive_openmp() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("OMP_WAIT_POLICY").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let mut args = std::env::args_os();
    let mut cmd = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        cmd.arg0(arg0);
    }
    // exec replaces this process (same pid, so signals and `kill` reach the new image); it returns only on error.
    let err = cmd.args(args).env("OMP_WAIT_POLICY", "PASSIVE").exec();
    torchlight_cli::eoutln!("warning: could not restart with OMP_WAIT_POLICY=PASSIVE ({err}); libtorch may run slower");
}

/// The libtorch version this binary runs against: read beside the libtorch_cpu.so actually mapped into the
/// process (LD_LIBRARY_PATH may point elsewhere than the build's), else beside the build's.
pub fn libtorch_version() -> String {
    let loaded = std::fs::read_to_string("/proc/self/maps").ok().and_then(|maps| {
        maps.lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .find(|p| p.ends_with("/libtorch_cpu.so"))
            .and_then(|p| std::path::Path::new(p).parent().map(|d| d.to_path_buf()))
    });
    let built = option_env!("TORCHLIGHT_LIBTORCH_LIB").map(std::path::PathBuf::from);
    loaded
        .into_iter()
        .chain(built)
        .find_map(|lib| {
            let text = std::fs::read_to_string(lib.join("../version.py")).ok()?;
            text.lines().find_map(|l| l.strip_prefix("__version__ = ").map(|v| v.trim_matches(['\'', '"']).to_string()))
        })
        // torch-sys 0.26 is written against this libtorch; a wheel always has version.py, so this is rare.
        .unwrap_or_else(|| "2.13.0 (assumed: no torch/version.py beside libtorch)".to_string())
}

/// Devices libtorch can use, in words.
#[derive(Debug, Clone)]
pub struct Devices {
    pub cuda_count: usize,
    pub cudnn: bool,
    pub cpu_threads: i32,
}

pub fn devices() -> Devices {
    init();
    Devices {
        cuda_count: tch::Cuda::device_count().max(0) as usize,
        cudnn: tch::Cuda::cudnn_is_available(),
        cpu_threads: tch::get_num_threads(),
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "device {asked} asked for, but libtorch sees {count} CUDA device(s); on a GPU box install the CUDA libtorch \
     with `.ci/setup --cuda`, or use --device cpu"
)]
pub struct NoSuchDevice {
    pub asked: Device,
    pub count: usize,
}

/// The tch device for `--device`; `auto` picks CUDA when libtorch sees it.
pub fn parse_device(device: Device) -> Result<tch::Device, NoSuchDevice> {
    init();
    match device {
        Device::Auto => Ok(tch::Device::cuda_if_available()),
        Device::Cpu => Ok(tch::Device::Cpu),
        Device::Cuda(n) => {
            let count = tch::Cuda::device_count().max(0) as usize;
            if n >= count {
                return Err(NoSuchDevice { asked: device, count });
            }
            Ok(tch::Device::Cuda(n))
        }
    }
}
