"""Export to ONNX under the model contract (``shared/docs/model-contract.md``), check, bundle.

* ``features.onnx``: input ``image`` float32 ``[1, 1, H, W]`` (H, W dynamic, multiples of
  ``deepsim.pad_multiple``), output ``features`` float32 ``[1, C, H, W]``; the mean/std
  normalisation is inside the graph; BatchNorm is folded into the convolutions.
* ``mlp.onnx``: inputs ``left``, ``right`` float32 ``[M, C]`` (M dynamic), output
  ``similarity`` float32 ``[M]`` in ``[0, 1]`` (sigmoid inside).
* metadata: ``deepsim.contract``, ``deepsim.role``, ``deepsim.arch``, ``deepsim.embedding_dim``,
  ``deepsim.pad_multiple``, ``deepsim.normalization`` (on both files).
* opset 17, standard ops only (legacy TorchScript-based exporter).

Parity (PyTorch vs onnxruntime), the tolerances this module checks and reports:

* fp32 weights: features ``max|diff| <= 1e-4 * max(1, max|torch|)``; MLP ``max|diff| <= 1e-5``.
* fp16 weight storage (``--fp16``: initialisers stored as float16 and cast to float32 inside
  the graph, so the file is half as big and the arithmetic still float32): features
  ``max|diff| <= 2e-3 * max(1, max|torch|)`` and every per-pixel cosine between the torch and
  the ONNX embedding >= 0.999; MLP ``max|diff| <= 1e-3``.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from . import CONTRACT_VERSION
from .models import MLPSimilarity, count_parameters

OPSET = 17
TOL_FP32 = {"features_rel": 1e-4, "mlp_abs": 1e-5}
TOL_FP16 = {"features_rel": 2e-3, "features_min_cos": 0.999, "mlp_abs": 1e-3}


def contract_metadata(*, role: str, arch: str, embedding_dim: int, pad_multiple: int, normalization: str) -> dict[str, str]:
    if role not in ("features", "mlp"):
        raise ValueError(f"role must be 'features' or 'mlp', got {role!r}")
    return {
        "deepsim.contract": str(CONTRACT_VERSION),
        "deepsim.role": role,
        "deepsim.arch": arch,
        "deepsim.embedding_dim": str(int(embedding_dim)),
        "deepsim.pad_multiple": str(int(pad_multiple)),
        "deepsim.normalization": normalization,
    }


def set_metadata(model: onnx.ModelProto, props: dict[str, str]) -> None:
    existing = {p.key: p for p in model.metadata_props}
    for k, v in props.items():
        if k in existing:
            existing[k].value = v
        else:
            model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))


def read_metadata(path: str | Path) -> dict[str, str]:
    m = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in m.metadata_props}


def fp16_storage(model: onnx.ModelProto, *, min_elements: int = 16) -> onnx.ModelProto:
    """Store float32 initialisers with >= ``min_elements`` values as float16, each followed by a
    ``Cast`` to float32 at the top of the graph (inputs/outputs and arithmetic stay float32)."""
    g = model.graph
    casts, keep = [], []
    for init in g.initializer:
        if init.data_type == TensorProto.FLOAT and int(np.prod(init.dims)) >= min_elements:
            arr = numpy_helper.to_array(init).astype(np.float16)
            half = numpy_helper.from_array(arr, name=init.name + "__fp16")
            keep.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT, name=init.name + "__cast"))
        else:
            keep.append(init)
    del g.initializer[:]
    g.initializer.extend(keep)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(casts + nodes)
    return model


def _export(module: torch.nn.Module, args: tuple, path: Path, *, input_names, output_names, dynamic_axes,
            metadata: dict[str, str], fp16: bool, doc: str) -> Path:
    buf = io.BytesIO()
    torch.onnx.export(
        module,
        args,
        buf,
        input_names=input_names,
        output_names=output_names,
        dynamic_axes=dynamic_axes,
        opset_version=OPSET,
        do_constant_folding=True,
        dynamo=False,
    )
    model = onnx.load_from_string(buf.getvalue())
    if fp16:
        model = fp16_storage(model)
    set_metadata(model, metadata)
    model.producer_name = "deepsim_train"
    model.doc_string = doc
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def export_features(net: torch.nn.Module, path: str | Path, *, arch: str | None = None, fp16: bool = False,
                    normalization: str | None = None) -> Path:
    """Write ``features.onnx`` for a feature extractor (eval mode, BN folded)."""
    net = net.eval()
    m = int(getattr(net, "pad_multiple", 1))
    arch = arch or getattr(net, "arch", "?")
    norm = normalization or (net.normalization_string() if hasattr(net, "normalization_string") else "")
    h, w = 2 * max(m, 8), 3 * max(m, 8)
    x = torch.rand(1, 1, h, w)
    meta = contract_metadata(role="features", arch=arch, embedding_dim=net.embedding_dim, pad_multiple=m, normalization=norm)
    with torch.no_grad():
        return _export(
            getattr(net, "onnx_module", net), (x,), Path(path),
            input_names=["image"], output_names=["features"],
            dynamic_axes={"image": {2: "height", 3: "width"}, "features": {2: "height", 3: "width"}},
            metadata=meta, fp16=fp16,
            doc=f"deepsim feature extractor {arch}: image [1,1,H,W] in [0,1] -> features [1,{net.embedding_dim},H,W]",
        )


def export_mlp(mlp: torch.nn.Module, path: str | Path, *, arch: str, pad_multiple: int, normalization: str,
               fp16: bool = False, sigmoid_inside: bool = True) -> Path:
    """Write ``mlp.onnx``: ``left, right [M, C] -> similarity [M]`` (sigmoid inside)."""
    mlp = mlp.eval()
    c = int(mlp.embedding_dim)
    # ``onnx_module``: a TorchScript equivalent with the sigmoid inside (converted models)
    wrapped = getattr(mlp, "onnx_module", None) or (MLPSimilarity(mlp) if sigmoid_inside else mlp)
    args = (torch.randn(5, c), torch.randn(5, c))
    meta = contract_metadata(role="mlp", arch=arch, embedding_dim=c, pad_multiple=pad_multiple, normalization=normalization)
    with torch.no_grad():
        return _export(
            wrapped, args, Path(path),
            input_names=["left", "right"], output_names=["similarity"],
            dynamic_axes={"left": {0: "M"}, "right": {0: "M"}, "similarity": {0: "M"}},
            metadata=meta, fp16=fp16,
            doc=f"deepsim decision MLP for {arch}: left, right [M,{c}] -> similarity [M] in [0,1]",
        )


# --- parity ------------------------------------------------------------------------------------
@dataclass
class Parity:
    what: str
    max_abs_diff: float
    max_abs_ref: float
    tolerance: float
    min_cosine: float | None = None
    min_cosine_required: float | None = None

    @property
    def ok(self) -> bool:
        good = self.max_abs_diff <= self.tolerance
        if self.min_cosine_required is not None:
            good = good and self.min_cosine is not None and self.min_cosine >= self.min_cosine_required
        return bool(good)

    def as_dict(self) -> dict:
        return {**self.__dict__, "ok": self.ok}


def _session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def check_features(net: torch.nn.Module, path: str | Path, images: dict[str, np.ndarray], *, fp16: bool = False) -> list[Parity]:
    """Compare PyTorch and onnxruntime on each ``[H, W]`` image (padded by the caller)."""
    sess = _session(Path(path))
    tol = TOL_FP16 if fp16 else TOL_FP32
    out = []
    net = net.eval()
    for name, img in images.items():
        x = np.ascontiguousarray(img, dtype=np.float32)[None, None]
        with torch.no_grad():
            ref = net(torch.from_numpy(x)).numpy()
        (got,) = sess.run(["features"], {"image": x})
        if got.shape != ref.shape:
            raise AssertionError(f"features {name}: onnx shape {got.shape} != torch shape {ref.shape}")
        diff = float(np.abs(got - ref).max())
        mref = float(np.abs(ref).max())
        num = (got * ref).sum(1)
        den = np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1)
        cos = float((num / np.maximum(den, 1e-12))[den > 1e-12].min()) if (den > 1e-12).any() else 1.0
        out.append(Parity(f"features:{name}:{img.shape[0]}x{img.shape[1]}", diff, mref, tol["features_rel"] * max(1.0, mref),
                          cos, tol.get("features_min_cos")))
    return out


def check_mlp(mlp: torch.nn.Module, path: str | Path, left: np.ndarray, right: np.ndarray, *, fp16: bool = False, what: str = "mlp") -> Parity:
    sess = _session(Path(path))
    tol = TOL_FP16 if fp16 else TOL_FP32
    with torch.no_grad():
        ref = torch.sigmoid(mlp.eval()(torch.from_numpy(left), torch.from_numpy(right))).numpy()
    (got,) = sess.run(["similarity"], {"left": left.astype(np.float32), "right": right.astype(np.float32)})
    if got.shape != ref.shape:
        raise AssertionError(f"{what}: onnx shape {got.shape} != torch shape {ref.shape}")
    return Parity(what, float(np.abs(got - ref).max()), float(np.abs(ref).max()), tol["mlp_abs"])


# --- bundle ------------------------------------------------------------------------------------
CARD_TEMPLATE = """# deepsim model: {name}

| | |
|---|---|
| architecture | {arch} (feature extractor){mlp_line} |
| parameters | features {feat_params:,}{mlp_params_txt} |
| embedding dim / pad multiple | {embedding_dim} / {pad_multiple} |
| input rule | {normalization} |
| weights storage | {storage} |
| contract | deepsim.contract = {contract} |
| training data | {training_data} |
| training | {steps} steps, {epochs} epochs, {train_time} |
| held-out JP | {jp} |
| disparity accuracy | {disp_acc} |
| exported | {date} by deepsim_train {version} |

## Parity (PyTorch vs onnxruntime)

{parity}

## Reproduce

```
{command}
```

Disparity convention: left pixel (x, y) matches right pixel (x - d, y).
Cost for the engine: 1 - similarity (MLP) or (1 - cos) / 2 (cosine).
"""


def export_bundle(
    net: torch.nn.Module,
    mlp: torch.nn.Module | None,
    out_dir: str | Path,
    *,
    name: str | None = None,
    fp16: bool = False,
    real_images: dict[str, np.ndarray] | None = None,
    card: dict | None = None,
    seed: int = 0,
) -> dict:
    """Write ``features.onnx`` [+ ``mlp.onnx``] + ``card.md`` + ``export.json`` into ``out_dir``,
    check parity on random and real inputs; raises ``AssertionError`` when a check fails."""
    from . import __version__
    from .sampling import pad_to_multiple

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net = net.eval()
    arch = getattr(net, "arch", "?")
    m = int(getattr(net, "pad_multiple", 1))
    norm = net.normalization_string() if hasattr(net, "normalization_string") else ""
    fpath = export_features(net, out / "features.onnx", arch=arch, fp16=fp16, normalization=norm)
    rng = np.random.default_rng(seed)
    base = max(m, 8)
    images = {"random": rng.random((3 * base, 5 * base), dtype=np.float32)}
    for k, img in (real_images or {}).items():
        t, _ = pad_to_multiple(torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))[None, None], m)
        images[k] = t[0, 0].numpy()
    checks = check_features(net, fpath, images, fp16=fp16)
    if mlp is not None:
        mpath = export_mlp(mlp, out / "mlp.onnx", arch=arch, pad_multiple=m, normalization=norm, fp16=fp16)
        c = net.embedding_dim
        left = rng.standard_normal((1000, c)).astype(np.float32)
        right = rng.standard_normal((1000, c)).astype(np.float32)
        checks.append(check_mlp(mlp, mpath, left, right, fp16=fp16, what="mlp:random"))
        # real embeddings: pixels of the first real image against shifted pixels
        if real_images:
            with torch.no_grad():
                f = net(torch.from_numpy(images[next(iter(real_images))])[None, None])[0]
            flat = f.reshape(c, -1).T
            idx = torch.from_numpy(rng.integers(0, flat.shape[0], size=(2, 2000)))
            checks.append(check_mlp(mlp, mpath, flat[idx[0]].numpy(), flat[idx[1]].numpy(), fp16=fp16, what="mlp:real"))
    # The engine's default feature margin (tiles exact at the least context).
    exact_margin, _ = stamp_exact_margin(out)
    report = {
        "exact_margin_px": exact_margin,
        "name": name or out.name,
        "arch": arch,
        "fp16_weights": fp16,
        "opset": OPSET,
        "feature_params": count_parameters(net, trainable_only=False),
        "mlp_params": count_parameters(mlp) if mlp is not None else 0,
        "parity": [c.as_dict() for c in checks],
        "files": {p.name: p.stat().st_size for p in out.glob("*.onnx")},
    }
    (out / "export.json").write_text(json.dumps(report, indent=1))
    card = dict(card or {})
    parity_txt = "\n".join(
        f"- {c.what}: max |diff| {c.max_abs_diff:.2e} (tolerance {c.tolerance:.1e}"
        + (f", min cosine {c.min_cosine:.6f} >= {c.min_cosine_required}" if c.min_cosine_required else "")
        + f") {'ok' if c.ok else 'FAILED'}"
        for c in checks
    )
    (out / "card.md").write_text(
        CARD_TEMPLATE.format(
            name=report["name"],
            arch=arch,
            mlp_line=" + decision MLP 128-384-384-384-1" if mlp is not None else " (cosine only, no MLP)",
            feat_params=report["feature_params"],
            mlp_params_txt=f", MLP {report['mlp_params']:,}" if mlp is not None else "",
            embedding_dim=net.embedding_dim,
            pad_multiple=m,
            normalization=norm,
            storage="float16 (cast to float32 in the graph)" if fp16 else "float32",
            contract=CONTRACT_VERSION,
            training_data=card.get("training_data", "n/a"),
            steps=card.get("steps", "n/a"),
            epochs=card.get("epochs", "n/a"),
            train_time=card.get("train_time", "n/a"),
            jp=card.get("jp", "not measured"),
            disp_acc=card.get("disp_acc", "not measured (engine side)"),
            date=time.strftime("%Y-%m-%d"),
            version=__version__,
            parity=parity_txt,
            command=card.get("command", "n/a"),
        )
    )
    bad = [c.what for c in checks if not c.ok]
    if bad:
        raise AssertionError(f"ONNX parity failed for {bad}; see {out / 'export.json'}")
    return report


# --- exact tiling margin -----------------------------------------------------------------------

MARGIN_KEY = "deepsim.exact_margin_px"
MARGIN_CANDIDATES = (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256)


def measure_exact_margin(features_path: str | Path, pad_multiple: int, *, min_cosine: float = 0.99999,
                         seed: int = 0) -> tuple[int | None, dict[int, float]]:
    """The smallest context (px) around a tile whose features equal the whole image's.

    The engine runs feature extractors tile by tile, each tile with a margin of context; a
    margin covering the receptive field makes tiles exact, a larger one only costs compute
    ((tile + 2 m)² / tile² per pixel). This runs the network on a 640² textured image, whole
    and as a central 64² core with margin m, for growing m, and returns the first m (a multiple
    of ``pad_multiple``) whose per-pixel embedding cosine to the whole-image features is at least
    ``min_cosine`` everywhere in the core (fp16 storage already costs ~4e-5), with the cosine
    reached at each m. None when no candidate reaches it (e.g. a global attention block).
    """
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    side, core = 640, 64
    # Band-limited texture with edges: sums of smoothed noise at several scales.
    image = np.zeros((side, side), np.float32)
    for scale in (1, 3, 9, 27):
        noise = rng.standard_normal((side // scale + 2, side // scale + 2)).astype(np.float32)
        image += np.kron(noise, np.ones((scale, scale), np.float32))[:side, :side] / scale ** 0.5
    image = (image - image.mean()) / (image.std() + 1e-6)
    sess = ort.InferenceSession(str(features_path), providers=["CPUExecutionProvider"])

    def features(window: np.ndarray) -> np.ndarray:
        f = sess.run(None, {"image": window[None, None]})[0][0]
        return f / (np.linalg.norm(f, axis=0, keepdims=True) + 1e-12)

    whole = features(image)
    c0 = (side - core) // 2
    c0 -= c0 % pad_multiple
    reached: dict[int, float] = {}
    for m in MARGIN_CANDIDATES:
        if m % pad_multiple or c0 - m < 0 or c0 + core + m > side:
            continue
        window = image[c0 - m:c0 + core + m, c0 - m:c0 + core + m]
        got = features(window)[:, m:m + core, m:m + core]
        cos = float((got * whole[:, c0:c0 + core, c0:c0 + core]).sum(0).min())
        reached[m] = cos
        if cos >= min_cosine:
            return m, reached
    return None, reached


def stamp_exact_margin(bundle: str | Path, *, min_cosine: float = 0.99999) -> tuple[int | None, dict[int, float]]:
    """Measures a bundle's exact margin and writes it into features.onnx's metadata
    (``deepsim.exact_margin_px``; the engine's default ``--feature-margin``). Weights are untouched."""
    path = Path(bundle) / "features.onnx"
    model = onnx.load(str(path), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    margin, reached = measure_exact_margin(path, int(meta.get("deepsim.pad_multiple", "1")), min_cosine=min_cosine)
    if margin is not None:
        set_metadata(model, {MARGIN_KEY: str(margin)})
    else:
        kept = [p for p in model.metadata_props if p.key != MARGIN_KEY]
        del model.metadata_props[:]
        model.metadata_props.extend(kept)
    tmp = path.with_name(path.name + ".partial")
    onnx.save(model, str(tmp))
    tmp.replace(path)
    return margin, reached
