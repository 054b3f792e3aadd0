#!/usr/bin/env python
"""Export tiny contract-conforming ONNX models plus golden inputs/outputs for the engine's tests.

Usage::

    python training/scripts/make_tiny_models.py OUT_DIR [--seed 0] [--fp16-too] [--int8-too | --int8-only]

Writes one bundle folder per model under ``OUT_DIR`` and ``OUT_DIR/manifest.json``:

* ``tiny_conv/``  — ``(x-0.434)/0.195 -> conv3x3(1->8) -> ReLU -> conv3x3(8->8)``, C = 8,
  ``pad_multiple`` 8, plus a tiny MLP (16 -> 16 -> 16 -> 1, sigmoid inside).
* ``patch3/``, ``patch5/`` — parameter-free "identity/patch" features: channel
  ``c = (dy + r) * k + (dx + r)`` is ``I(y + dy, x + dx)`` (zero outside the image) minus the
  mean of the k x k window, so cosine(left, right) == NCC of the two k x k windows; C = k*k,
  ``pad_multiple`` 1, no normalisation, no MLP.
* ``msaff_tiny/``, ``unet32_tiny/``, ``unet_attention_tiny/`` — the real architectures, narrow
  (C = 8), with a tiny MLP: every ONNX op the full-size models use (Conv with folded BN,
  Resize bilinear half-pixel, MaxPool, ConvTranspose, Concat, Sigmoid, Mul, Add, Sub, Div).

Each folder holds ``features.onnx`` [+ ``mlp.onnx``], ``card.md``, ``export.json`` and goldens:
``features_input.npy`` (float32 ``[1,1,H,W]``), ``features_output.npy`` (``[1,C,H,W]``),
``mlp_left.npy`` / ``mlp_right.npy`` (``[M,C]``), ``mlp_similarity.npy`` (``[M]``). Golden
outputs are onnxruntime's, checked against PyTorch (fp32: ``max|diff| <= 1e-5 * max(1, max|ref|)``);
the engine should match them with the same tolerance. ``--fp16-too`` adds ``*_fp16`` variants
(float16 initialisers + Cast): their goldens are onnxruntime's output of the fp16 file (match
it with 1e-5 as well); they differ from the fp32 ones by <= 2e-3 relative. ``--int8-too`` adds
``msaff_tiny_int8`` (``features.int8.onnx`` + golden ``features_int8_output.npy``, ONNX Runtime only). Everything is seeded, so re-running
gives identical numbers on the same library versions.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import torch

from deepsim_train.export import TOL_FP16, export_bundle
from deepsim_train.models import build_feature_extractor, build_mlp

GOLDEN_TOL = 1e-5


def _randomize_bn(net: torch.nn.Module, gen: torch.Generator) -> None:
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=gen) - 0.5)


def _goldens(folder: Path, net, mlp, hw: tuple[int, int], rng: np.random.Generator, *, fp16: bool = False) -> dict:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    x = rng.random((1, 1) + hw, dtype=np.float32)
    sess = ort.InferenceSession(str(folder / "features.onnx"), so, providers=["CPUExecutionProvider"])
    (y,) = sess.run(["features"], {"image": x})
    with torch.no_grad():
        ref = net.eval()(torch.from_numpy(x)).numpy()
    diff = float(np.abs(y - ref).max())
    tol = TOL_FP16["features_rel"] if fp16 else GOLDEN_TOL
    assert diff <= tol * max(1.0, float(np.abs(ref).max())), f"{folder.name}: features onnx vs torch {diff}"
    np.save(folder / "features_input.npy", x)
    np.save(folder / "features_output.npy", y)
    info = {"features_input": list(x.shape), "features_output": list(y.shape), "features_max_abs_diff_torch": diff}
    if mlp is not None:
        c = net.embedding_dim
        left = rng.standard_normal((7, c)).astype(np.float32)
        right = rng.standard_normal((7, c)).astype(np.float32)
        msess = ort.InferenceSession(str(folder / "mlp.onnx"), so, providers=["CPUExecutionProvider"])
        (s,) = msess.run(["similarity"], {"left": left, "right": right})
        with torch.no_grad():
            sref = mlp.eval().similarity(torch.from_numpy(left), torch.from_numpy(right)).numpy()
        assert float(np.abs(s - sref).max()) <= (TOL_FP16["mlp_abs"] if fp16 else GOLDEN_TOL)
        np.save(folder / "mlp_left.npy", left)
        np.save(folder / "mlp_right.npy", right)
        np.save(folder / "mlp_similarity.npy", s)
        info.update({"mlp_left": list(left.shape), "mlp_similarity": list(s.shape)})
    return info


MODELS = {
    # name: (registered builder, has tiny MLP, golden H x W)
    "tiny_conv": ("tiny_conv", True, (24, 40)),
    "patch3": ("patch3", False, (13, 21)),
    "patch5": ("patch5", False, (13, 21)),
    "msaff_tiny": ("msaff_tiny", True, (24, 40)),
    "unet32_tiny": ("unet32_tiny", True, (32, 48)),
    "unet_attention_tiny": ("unet_attention_tiny", True, (32, 48)),
}


def make(out: Path, *, seed: int = 0, fp16_too: bool = False) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"contract": 1, "seed": seed, "tolerance_abs_rel": GOLDEN_TOL, "models": {}}
    for i, (name, (builder, with_mlp, hw)) in enumerate(MODELS.items()):
        gen = torch.Generator().manual_seed(seed * 1000 + i)
        torch.manual_seed(seed * 1000 + i)
        net = build_feature_extractor(builder)
        _randomize_bn(net, gen)
        net.eval()
        mlp = build_mlp(net.embedding_dim, hidden=16, depth=2).eval() if with_mlp else None
        variants = [(name, False)] + ([(name + "_fp16", True)] if fp16_too and with_mlp else [])
        for vname, fp16 in variants:
            folder = out / vname
            rep = export_bundle(net, mlp, folder, name=vname, fp16=fp16, seed=seed,
                                card={"training_data": "none (random weights; engine test fixture)",
                                      "command": f"python training/scripts/make_tiny_models.py {out}"})
            info = _goldens(folder, net, mlp, hw, np.random.default_rng(seed * 1000 + i), fp16=fp16)
            ops = sorted({n.op_type for n in onnx.load(str(folder / "features.onnx")).graph.node})
            meta = {p.key: p.value for p in onnx.load(str(folder / "features.onnx")).metadata_props}
            manifest["models"][vname] = {
                "arch": meta["deepsim.arch"],
                "embedding_dim": int(meta["deepsim.embedding_dim"]),
                "pad_multiple": int(meta["deepsim.pad_multiple"]),
                "has_mlp": mlp is not None,
                "fp16_weights": fp16,
                "feature_ops": ops,
                "params": rep["feature_params"],
                **info,
            }
            print(f"{vname:24s} C={meta['deepsim.embedding_dim']:>2} pad={meta['deepsim.pad_multiple']:>2} "
                  f"mlp={'yes' if mlp is not None else 'no '} ops={','.join(ops)}")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    (out / "README.md").write_text(__doc__ or "")
    return manifest


def make_int8(out: Path, *, source: str = "msaff_tiny", seed: int = 0) -> Path:
    """``{source}_int8/``: a copy of the ``source`` bundle plus ``features.int8.onnx`` (static
    QDQ int8, calibrated on seeded random images; see deepsim_train.quantize) and its golden
    ``features_int8_output.npy`` (onnxruntime's output on ``features_input.npy``)."""
    import shutil

    import onnxruntime as ort

    from deepsim_train.quantize import INT8_FILE, quantize_features

    src, folder = out / source, out / f"{source}_int8"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(src, folder)
    rng = np.random.default_rng(seed)
    crops = [rng.random((1, 1, 64, 64), dtype=np.float32) for _ in range(4)]
    quantize_features(folder / "features.onnx", folder / INT8_FILE, crops, description=f"engine test fixture: 4 random 64² images, seed {seed}")
    x = np.load(folder / "features_input.npy")
    (y,) = ort.InferenceSession(str(folder / INT8_FILE), providers=["CPUExecutionProvider"]).run(["features"], {"image": x})
    np.save(folder / "features_int8_output.npy", y.astype(np.float32))
    return folder


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="tiny ONNX models + goldens for the engine tests")
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fp16-too", action="store_true", help="also write fp16-weight variants")
    ap.add_argument("--int8-too", action="store_true", help="also write msaff_tiny_int8 (msaff_tiny + features.int8.onnx)")
    ap.add_argument("--int8-only", action="store_true", help="only (re)write msaff_tiny_int8 from an existing msaff_tiny")
    a = ap.parse_args(argv)
    if not a.int8_only:
        make(a.out, seed=a.seed, fp16_too=a.fp16_too)
        print(f"wrote {a.out}/manifest.json")
    if a.int8_too or a.int8_only:
        print(f"wrote {make_int8(a.out, seed=a.seed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
