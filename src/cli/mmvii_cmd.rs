//! `deepsim mmvii`: MicMac's `MMVII DM4FillCubeCost` call → the cost cube.
//!
//! Parses the call (library: `deepsim::mmvii::Call`), resolves the model and the runtime
//! (`UseCuda=1` is an explicit GPU request: ONNX Runtime with CUDA, or TensorRT with
//! `--device tensorrt`, and an error if that cannot be honoured), then runs in the current
//! folder, which is MicMac's working folder.

use super::args::{MmviiArgs, RuntimeKind};
use anyhow::{bail, Context};
use deepsim::mmvii::{self, cube_file_name, resolve_cnn_params, Call, ModelName, Scorer};
use deepsim::runtime::Device;
use deepsim::similarity::{Head, Learned, Tiling};
use std::path::Path;

pub fn run(args: MmviiArgs, quiet: bool) -> anyhow::Result<()> {
    let call = Call::parse(&args.call)?;
    let workdir = Path::new(".");
    // Whatever fails from here on, MicMac must not find a cube from an earlier call.
    let stale = mmvii::in_workdir(workdir, cube_file_name(&call.post));
    if stale.exists() {
        std::fs::remove_file(&stale).map_err(|e| deepsim::Error::io(&stale, e))?;
    }
    if let Some(other) = &call.mod_cmp
        && !quiet
    {
        note!("deepsim mmvii: warning: ModCmp={other} is accepted but deepsim writes no comparison image; the cube is unaffected");
    }
    let learned = match call.model {
        ModelName::MmviiCorrel => None,
        ModelName::MvcnnCorrel => Some(load_model(&call, &args, workdir, quiet)?),
    };
    let scorer = match &learned {
        None => Scorer::Correl { szw: call.szw },
        Some(model) => Scorer::Learned(model),
    };
    let summary = mmvii::run(&call, workdir, &scorer)?;
    if !quiet {
        let what = match &learned {
            None => format!("MMVIICorrel {0}x{0}", 2 * call.szw + 1),
            Some(model) => format!("MVCNNCorrel {}", deepsim::similarity::Similarity::name(model)),
        };
        note!(
            "deepsim mmvii: {}×{} tile, {} costs, {what}, StepZ {}: read {:.2} s, features {:.2} s, fill {:.2} s, write {:.2} s → {}",
            summary.tile.0,
            summary.tile.1,
            summary.entries,
            call.step_z,
            summary.read_s,
            summary.features_s,
            summary.fill_s,
            summary.write_s,
            summary.cube.display()
        );
    }
    Ok(())
}

fn load_model(call: &Call, args: &MmviiArgs, workdir: &Path, quiet: bool) -> anyhow::Result<Learned> {
    let spec = call.cnn_params.as_deref().expect("checked by Call::parse");
    let bundle = resolve_cnn_params(spec, workdir, call.use_predic_net)?;
    let kind = args.runtime.unwrap_or(if call.use_cuda { RuntimeKind::Ort } else { RuntimeKind::Tract });
    let device = match (call.use_cuda, args.device) {
        (true, _) if kind == RuntimeKind::Tract => bail!(
            "UseCuda=1 asks for the GPU, but the runtime is tract (--runtime / DEEPSIM_RUNTIME), which runs on the CPU only; \
             use --runtime ort (ONNX Runtime from onnxruntime-gpu) or call with UseCuda=0"
        ),
        (true, None) => Device::Cuda,
        (true, Some(Device::Cpu)) => bail!(
            "UseCuda=1 asks for the GPU, but --device / DEEPSIM_DEVICE is cpu; use cuda, tensorrt or auto, or call with UseCuda=0"
        ),
        (true, Some(device)) => device,
        (false, device) => device.unwrap_or(Device::Cpu),
    };
    let runtime = super::runtime::build(
        kind,
        super::runtime::DeviceArgs { device, device_id: args.device_id, trt_cache: args.trt_cache.clone(), trt_fp16: args.trt_fp16 },
    )
    .with_context(|| if call.use_cuda { "UseCuda=1 (an explicit GPU request)".to_string() } else { format!("CNNParams={spec}") })?;
    let head = if call.use_predic_net { Head::Mlp } else { Head::Cosine };
    let tiling = Tiling::for_model(args.feature_tile, args.feature_margin, &bundle.features);
    let model = Learned::new(&bundle, runtime.as_ref(), Some(head), tiling)?;
    if !quiet {
        let arch = call.cnn_arch.as_deref().map(|a| format!(" (CNNArch={a} is informative: the ONNX file declares its architecture)")).unwrap_or_default();
        note!(
            "deepsim mmvii: model {}{} on {}{arch}",
            bundle.features.path.display(),
            bundle.mlp.as_ref().map(|m| format!(" + {}", m.path.display())).unwrap_or_default(),
            runtime.name()
        );
    }
    Ok(model)
}
