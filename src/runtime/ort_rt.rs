//! ONNX Runtime, through `ort` with `load-dynamic`: the shared library is found at run time
//! (`ORT_DYLIB_PATH`, else the `onnxruntime` / `onnxruntime-gpu` Python package of `python3`),
//! so the engine builds and runs without it and never downloads anything.
//!
//! Execution providers follow one policy: an explicit GPU request (`cuda`, `tensorrt`) that
//! cannot be honoured is an error saying why; `auto` tries TensorRT, then CUDA, and falls back to
//! the CPU with a warning; the active provider is reported (`Ort::provider`) and lands in
//! run.json. `Session::run` takes `&mut self`, so networks keep a pool of sessions and each
//! worker thread takes its own.

use super::{features_output, similarity_output, DecisionNet, Device, FeatureNet, Runtime};
use crate::error::{Error, ErrorKind, Result};
use ndarray::{Array1, Array3, ArrayView2};
use ort::ep::{self, ExecutionProvider as _};
use ort::environment::Environment;
use ort::session::Session;
use ort::value::TensorRef;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// ONNX Runtime settings.
#[derive(Debug, Clone)]
pub struct OrtOptions {
    /// Requested execution provider.
    pub device: Device,
    /// GPU index.
    pub device_id: i32,
    /// TensorRT engine cache folder (engines are built once per model and input size).
    pub trt_cache: Option<PathBuf>,
    /// TensorRT fp16 kernels.
    pub trt_fp16: bool,
}

/// The ONNX Runtime runtime, with its resolved execution provider.
pub struct Ort {
    environment: &'static Environment,
    provider: Provider,
    options: OrtOptions,
}

/// The provider that was actually registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provider {
    Cpu,
    Cuda,
    TensorRt,
}

/// The library and its environment: ONNX Runtime allows one environment per process.
static LIBRARY: OnceLock<std::result::Result<(PathBuf, Environment), String>> = OnceLock::new();

/// Where the ONNX Runtime shared library is: `ORT_DYLIB_PATH`, else the Python package.
pub fn find_library() -> Option<PathBuf> {
    locate_library().map(|(path, _)| path)
}

/// Where the ONNX Runtime shared library is, and how it was found, in this order:
/// `ORT_DYLIB_PATH`; the `onnxruntime` package of the active virtual environment
/// (`VIRTUAL_ENV`, `CONDA_PREFIX`); of the project's own venvs (`DEEPSIM_TRAIN_VENV`, else
/// `~/.cache/deepsim/train-venv`; `DEEPSIM_PEERS_VENV`, else `~/.cache/deepsim/peers-venv`);
/// of `python3`.
pub fn locate_library() -> Option<(PathBuf, String)> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return Some((PathBuf::from(p), "ORT_DYLIB_PATH".to_string()));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let env_dir = |var: &str| std::env::var_os(var).filter(|p| !p.is_empty()).map(PathBuf::from);
    let venv = |var: &str, default: &str| env_dir(var).or_else(|| home.as_ref().map(|h| h.join(default)));
    let candidates = [
        ("the active virtual environment (VIRTUAL_ENV)", env_dir("VIRTUAL_ENV")),
        ("the active conda environment (CONDA_PREFIX)", env_dir("CONDA_PREFIX")),
        ("the training venv", venv("DEEPSIM_TRAIN_VENV", ".cache/deepsim/train-venv")),
        ("the peers venv", venv("DEEPSIM_PEERS_VENV", ".cache/deepsim/peers-venv")),
    ];
    for (what, dir) in candidates {
        let Some(dir) = dir else { continue };
        let Ok(lib) = std::fs::read_dir(dir.join("lib")) else { continue };
        let mut pythons: Vec<PathBuf> = lib
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("python3")))
            .collect();
        pythons.sort();
        for python in pythons.iter().rev() {
            if let Some(found) = newest_library(&python.join("site-packages/onnxruntime/capi")) {
                return Some((found, format!("{what}, {}", dir.display())));
            }
        }
    }
    let out = std::process::Command::new("python3")
        .args(["-c", "import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi'))"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let capi = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    newest_library(&capi).map(|p| (p, "python3's onnxruntime package".to_string()))
}

/// The newest `libonnxruntime.so.*` in `capi`.
fn newest_library(capi: &Path) -> Option<PathBuf> {
    let mut libs: Vec<PathBuf> = std::fs::read_dir(capi)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libonnxruntime.so.")))
        .collect();
    libs.sort();
    libs.pop()
}

fn load_library() -> Result<(&'static Path, &'static Environment)> {
    let loaded = LIBRARY.get_or_init(|| {
        let path = find_library().ok_or_else(|| {
            "the ONNX Runtime shared library was not found: set ORT_DYLIB_PATH to libonnxruntime.so, or \
             `pip install onnxruntime` (CPU) / `onnxruntime-gpu` (CUDA, TensorRT) for python3; or use \
             --runtime tract, which needs nothing"
                .to_string()
        })?;
        let environment = ort::init_from(&path)
            .map_err(|e| {
                format!("cannot load ONNX Runtime from {}: {e}; set ORT_DYLIB_PATH to a working libonnxruntime.so", path.display())
            })?
            .with_name("deepsim")
            .build()
            .map_err(|e| format!("{}: creating the ONNX Runtime environment: {e}", path.display()))?;
        Ok((path, environment))
    });
    match loaded {
        Ok((path, environment)) => Ok((path.as_path(), environment)),
        Err(msg) => Err(Error::new(ErrorKind::Unsupported, msg.clone())),
    }
}

fn ort_error(path: &Path, what: &str, err: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Backend, format!("{}: {what}: {err}", path.display()))
}

impl Ort {
    /// Loads ONNX Runtime and resolves the execution provider per the policy above.
    pub fn new(options: OrtOptions) -> Result<Self> {
        let (library, environment) = load_library()?;
        let gpu_hint = "needs the onnxruntime-gpu package (its libonnxruntime.so via ORT_DYLIB_PATH), \
                        CUDA/cuDNN libraries and an NVIDIA GPU";
        let available = |name: &str, ok: ort::Result<bool>| -> std::result::Result<(), String> {
            match ok {
                Ok(true) => Ok(()),
                Ok(false) => Err(format!("the {name} execution provider is not in the ONNX Runtime at {} ({gpu_hint})", library.display())),
                Err(e) => Err(format!("cannot query the {name} execution provider: {e}")),
            }
        };
        let provider = match options.device {
            Device::Cpu => Provider::Cpu,
            Device::Cuda => {
                available("CUDA", ep::CUDA::is_available()).map_err(|m| Error::new(ErrorKind::Unsupported, format!("--device cuda: {m}")))?;
                Provider::Cuda
            }
            Device::Tensorrt => {
                available("TensorRT", ep::TensorRT::is_available())
                    .map_err(|m| Error::new(ErrorKind::Unsupported, format!("--device tensorrt: {m}")))?;
                Provider::TensorRt
            }
            Device::Auto => {
                if available("TensorRT", ep::TensorRT::is_available()).is_ok() {
                    Provider::TensorRt
                } else if available("CUDA", ep::CUDA::is_available()).is_ok() {
                    Provider::Cuda
                } else {
                    // Not eprintln!: a closed stderr must not panic the run.
                    let _ = std::io::Write::write_fmt(
                        &mut std::io::stderr(),
                        format_args!("deepsim: warning: --device auto: no GPU execution provider in {}; running on the CPU\n", library.display()),
                    );
                    Provider::Cpu
                }
            }
        };
        Ok(Ort { environment, provider, options })
    }

    /// The provider in use: "cpu", "cuda" or "tensorrt".
    pub fn provider(&self) -> &'static str {
        match self.provider {
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
            Provider::TensorRt => "tensorrt",
        }
    }

    fn session(&self, path: &Path) -> Result<Session> {
        if !path.is_file() {
            return Err(Error::new(ErrorKind::Io, format!("{}: no such model file", path.display())));
        }
        let mut builder = Session::builder(self.environment).map_err(|e| ort_error(path, "session builder", e))?;
        let id = self.options.device_id;
        let providers = match self.provider {
            // No arena: it keeps the largest tile's activations (rounded up to powers of two)
            // for the whole run; tiles of one size reuse the planned buffers anyway.
            Provider::Cpu => vec![ep::CPU::default().with_arena_allocator(false).build()],
            Provider::Cuda => vec![ep::CUDA::default().with_device_id(id).build().error_on_failure()],
            Provider::TensorRt => {
                let mut trt = ep::TensorRT::default().with_device_id(id).with_fp16(self.options.trt_fp16);
                if let Some(dir) = &self.options.trt_cache {
                    trt = trt.with_engine_cache(true).with_engine_cache_path(dir.display());
                }
                vec![trt.build().error_on_failure(), ep::CUDA::default().with_device_id(id).build().error_on_failure()]
            }
        };
        if !providers.is_empty() {
            builder = builder.with_execution_providers(providers).map_err(|e| {
                ort_error(path, &format!("registering the {} execution provider", self.provider()), e)
            })?;
        }
        builder.commit_from_file(path).map_err(|e| ort_error(path, "loading the model", e))
    }
}

impl Runtime for Ort {
    fn name(&self) -> String {
        format!("ort/{}", self.provider())
    }

    fn feature_net(&self, path: &Path) -> Result<Box<dyn FeatureNet>> {
        let first = self.session(path)?;
        Ok(Box::new(OrtNet { path: path.to_path_buf(), sessions: Mutex::new(vec![first]), ort: self.clone_handle() }))
    }

    fn decision_net(&self, path: &Path) -> Result<Box<dyn DecisionNet>> {
        let first = self.session(path)?;
        Ok(Box::new(OrtNet { path: path.to_path_buf(), sessions: Mutex::new(vec![first]), ort: self.clone_handle() }))
    }

    /// ONNX Runtime's CPU provider fuses QDQ convolutions into int8 kernels (VNNI where the CPU
    /// has it): about 2× fp32 for msaff on AVX-512 VNNI. GPUs keep the float graph.
    fn runs_int8_fast(&self) -> bool {
        self.provider == Provider::Cpu
    }
}

impl Ort {
    fn clone_handle(&self) -> Ort {
        Ort { environment: self.environment, provider: self.provider, options: self.options.clone() }
    }
}

/// One network with a pool of sessions (one per concurrent caller).
struct OrtNet {
    path: PathBuf,
    sessions: Mutex<Vec<Session>>,
    ort: Ort,
}

impl OrtNet {
    /// Runs `f` on a session of the pool (a new one if all are busy) and returns it to the pool.
    fn with_session<T>(&self, f: impl FnOnce(&mut Session) -> Result<T>) -> Result<T> {
        let taken = self.sessions.lock().expect("no panic while locked").pop();
        let mut session = match taken {
            Some(s) => s,
            None => self.ort.session(&self.path)?,
        };
        let result = f(&mut session);
        self.sessions.lock().expect("no panic while locked").push(session);
        result
    }
}

impl FeatureNet for OrtNet {
    fn run(&self, image: ArrayView2<'_, f32>) -> Result<Array3<f32>> {
        let (h, w) = image.dim();
        let input = image.to_owned().into_shape_with_order((1, 1, h, w)).expect("same size");
        self.with_session(|session| {
            let tensor = TensorRef::from_array_view(input.view()).map_err(|e| ort_error(&self.path, "input", e))?;
            let outputs = session.run(ort::inputs!["image" => tensor]).map_err(|e| ort_error(&self.path, "running", e))?;
            let out = outputs["features"].try_extract_array::<f32>().map_err(|e| ort_error(&self.path, "reading the output", e))?;
            features_output(&self.path, out, h, w)
        })
    }

    fn uses_all_cores(&self) -> bool {
        true
    }
}

impl DecisionNet for OrtNet {
    fn run(&self, left: ArrayView2<'_, f32>, right: ArrayView2<'_, f32>) -> Result<Array1<f32>> {
        let (l, r) = (left.as_standard_layout(), right.as_standard_layout());
        self.with_session(|session| {
            let lt = TensorRef::from_array_view(l.view()).map_err(|e| ort_error(&self.path, "input", e))?;
            let rt = TensorRef::from_array_view(r.view()).map_err(|e| ort_error(&self.path, "input", e))?;
            let outputs =
                session.run(ort::inputs!["left" => lt, "right" => rt]).map_err(|e| ort_error(&self.path, "running", e))?;
            let out = outputs["similarity"].try_extract_array::<f32>().map_err(|e| ort_error(&self.path, "reading the output", e))?;
            similarity_output(&self.path, out, left.nrows())
        })
    }
}
