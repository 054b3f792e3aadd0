"""int8 variant of a bundle's feature extractor: ``features.int8.onnx`` for ONNX Runtime on CPUs.

Why: on a CPU the feature extractor is almost all of a learned run's time, and ONNX Runtime's
int8 convolutions (VNNI where the CPU has it) run msaff about twice as fast as fp32 (measured on
the 2-core AVX-512 VNNI machine: 7.3 s instead of 13.3 s for a 1136² window).

How: static post-training quantisation in ONNX's QDQ form (QuantizeLinear / DequantizeLinear
around each quantised operator, opset 17, no custom operators):

* the fp16 weights of the fp32 graph are folded first (``Cast`` of float16 initialisers), so the
  quantiser sees float32 weights;
* weights int8 per output channel, activations uint8 per tensor, with scales calibrated on crops
  of the *training* images (synthetic training pairs and the user's own pairs, never a
  validation pair) by the 99.999th percentile of each activation;
* ``1 - sigmoid(z)`` of the attention fusions (a ``Sub`` from a constant, which ONNX Runtime
  has no int8 kernel for) is rewritten ``sigmoid(z) * -1 + 1`` first, so the fusion stays in
  int8 instead of going through float (the float ``Sub`` and its dequantisation were 10 % of
  msaff's time);
* every convolution, ReLU, Add, Mul and Resize is quantised, the embedding's last convolution
  included (its float version was 15 % of the time, for an embedding cosine of 0.9994 instead of
  0.9995), except the first convolution of each branch (one input channel, where int8 saves
  nothing and loses the most): the engine dequantises the embedding to float.

The scales are fixed, so a tile's int8 features equal the whole image's exactly as fp32 ones do:
the bundle's exact margin carries over. The parity report (embedding cosine to fp32, JP with
both, time of both) goes into ``quantize.json`` and the card; the engine takes this file with
``--precision int8`` (or ``auto`` with ONNX Runtime on a CPU) and records the choice in run.json.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

INT8_FILE = "features.int8.onnx"
PRECISION_KEY = "deepsim.precision"
QUANTIZATION_KEY = "deepsim.quantization"
QUANTIZED_OPS = ("Conv", "Relu", "Add", "Mul", "Resize")
CALIBRATION_PERCENTILE = 99.999
CARD_HEADING = "## int8 variant (features.int8.onnx)"


@dataclass
class QuantizeConfig:
    bundle: str
    synth: str | None = None
    pairs: list[str] = field(default_factory=list)
    val: str | None = None
    crops: int = 16
    crop: int = 256
    val_pairs: int = 8
    seed: int = 0


def fold_fp16_weights(model):
    """The graph with every ``Cast(float16 initialiser -> float32)`` replaced by a float32
    initialiser (exporters store fp16 weights that way) and Identity nodes of initialisers
    bypassed; other nodes untouched. Returns (model, number of casts folded)."""
    import onnx
    from onnx import numpy_helper

    g = model.graph
    inits = {i.name: i for i in g.initializer}
    keep, folded = [], 0
    for node in g.node:
        src = node.input[0] if node.op_type == "Cast" and node.input else None
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        if src in inits and to == onnx.TensorProto.FLOAT and inits[src].data_type == onnx.TensorProto.FLOAT16:
            arr = numpy_helper.to_array(inits[src]).astype(np.float32)
            g.initializer.append(numpy_helper.from_array(arr, node.output[0]))
            folded += 1
        else:
            keep.append(node)
    # Weights shared between branches reach their convolutions through Identity nodes: point the
    # convolutions at the initialiser itself (the quantiser wants weights and biases as initialisers).
    names = {i.name for i in g.initializer}
    alias = {n.output[0]: n.input[0] for n in keep if n.op_type == "Identity" and n.input[0] in names}
    graph_outputs = {o.name for o in g.output}
    keep = [n for n in keep if not (n.op_type == "Identity" and n.output[0] in alias and n.output[0] not in graph_outputs)]
    for n in keep:
        for k, name in enumerate(n.input):
            if name in alias and alias[name] in names:
                n.input[k] = alias[name]
    del g.node[:]
    g.node.extend(keep)
    used = {i for n in g.node for i in n.input}
    unused = [i for i in g.initializer if i.name not in used and i.data_type == onnx.TensorProto.FLOAT16]
    for i in unused:
        g.initializer.remove(i)
    return model, folded


def rewrite_constant_subs(model):
    """The graph with every ``Sub(constant c, x)`` replaced by ``Add(Mul(x, -1), c)``, which are
    the same values and are both operators the quantiser keeps in int8 (there is no int8 Sub);
    other nodes untouched. Returns (model, number rewritten)."""
    from onnx import helper, numpy_helper

    g = model.graph
    constants = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in g.node
                 if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"}
    constants.update({i.name: numpy_helper.to_array(i) for i in g.initializer})
    nodes, rewritten = [], 0
    for n in g.node:
        if n.op_type == "Sub" and n.input[0] in constants and n.input[1] not in constants:
            c = np.asarray(constants[n.input[0]], dtype=np.float32)
            minus_one, offset, negated = f"{n.name}/minus_one", f"{n.name}/offset", f"{n.name}/negated"
            g.initializer.append(numpy_helper.from_array(np.array(-1.0, np.float32), minus_one))
            g.initializer.append(numpy_helper.from_array(c, offset))
            nodes.append(helper.make_node("Mul", [n.input[1], minus_one], [negated], name=f"{n.name}/Mul"))
            nodes.append(helper.make_node("Add", [negated, offset], [n.output[0]], name=f"{n.name}/Add"))
            rewritten += 1
        else:
            nodes.append(n)
    used = {i for n in nodes for i in n.input}
    nodes = [n for n in nodes if not (n.op_type == "Constant" and n.output[0] not in used)]
    del g.node[:]
    g.node.extend(nodes)
    return model, rewritten


def _grey_unit(path: Path) -> np.ndarray:
    from .imageio import read_image, to_unit

    return to_unit(read_image(path))


def _image_files(cfg: QuantizeConfig) -> tuple[list[Path], list[Path]]:
    """Left and right images of the calibration sources, training data only: (the user's own
    pairs, the synthetic training pairs)."""
    from .adapt.pairs import find_pair
    from .data.pairs import synth_pair_dirs

    own = [Path(f) for p in cfg.pairs for f in (find_pair(p).left, find_pair(p).right)]
    synth = [d / name for d in synth_pair_dirs(cfg.synth) for name in ("left.png", "right.png")] if cfg.synth else []
    if not own and not synth:
        raise ValueError("no calibration images: give --synth (synthetic training pairs) and/or --pairs (your own pairs)")
    return own, synth


def calibration_crops(cfg: QuantizeConfig, pad_multiple: int) -> list[np.ndarray]:
    """``cfg.crops`` random crops (``[1, 1, S, S]``, S = cfg.crop rounded down to the pad
    multiple): half from the user's own images (the domain the engine will run on), the rest
    from synthetic training pairs (or all from whichever source was given)."""
    rng = np.random.default_rng(cfg.seed)
    own, synth = _image_files(cfg)
    size = max(pad_multiple, cfg.crop // pad_multiple * pad_multiple)
    n_own = cfg.crops if not synth else (0 if not own else (cfg.crops + 1) // 2)
    picks = [own[int(rng.integers(len(own)))] for _ in range(n_own)]
    picks += [synth[int(rng.integers(len(synth)))] for _ in range(cfg.crops - n_own)]
    crops = []
    for f in picks:
        img = _grey_unit(f)
        h, w = img.shape
        if h < size or w < size:
            continue
        y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        crops.append(np.ascontiguousarray(img[None, None, y : y + size, x : x + size], dtype=np.float32))
    if not crops:
        raise ValueError(f"every calibration image is smaller than the crop ({size} px): lower --crop")
    return crops


def quantize_features(features: Path, out: Path, crops: list[np.ndarray], *, description: str) -> dict:
    """Writes the int8 QDQ variant of ``features`` to ``out``; returns what was done."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    model, folded = fold_fp16_weights(onnx.load(str(features)))
    model, subs = rewrite_constant_subs(model)
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get(PRECISION_KEY, "fp32") != "fp32":
        raise ValueError(f"{features}: already quantised ({PRECISION_KEY} = {meta[PRECISION_KEY]}); quantise the fp32 features.onnx")
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    init = {i.name: i for i in model.graph.initializer}

    exclude = [n.name for n in convs if n.input[1] in init and init[n.input[1]].dims[1] == 1]
    for n in model.graph.node:  # the quantiser needs node names to exclude them
        if not n.name:
            n.name = f"{n.op_type}_{id(n)}"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".fp32.tmp")
    onnx.save(model, str(tmp))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(crops)

        def get_next(self):
            c = next(self.it, None)
            return None if c is None else {"image": c}

    try:
        quantize_static(
            str(tmp), str(out) + ".tmp", Reader(), quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
            op_types_to_quantize=list(QUANTIZED_OPS), nodes_to_exclude=exclude,
            calibrate_method=CalibrationMethod.Percentile,
            extra_options={"CalibPercentile": CALIBRATION_PERCENTILE},
        )
    finally:
        tmp.unlink(missing_ok=True)
    q = onnx.load(str(out) + ".tmp")
    del q.metadata_props[:]
    meta[PRECISION_KEY] = "int8"
    meta[QUANTIZATION_KEY] = description
    for k, v in meta.items():
        q.metadata_props.add(key=k, value=v)
    # Keep only the operator domains the graph uses (the quantiser may declare others).
    used = {n.domain for n in q.graph.node} | {""}
    keep = [o for o in q.opset_import if o.domain in used]
    del q.opset_import[:]
    q.opset_import.extend(keep)
    onnx.save(q, str(out) + ".tmp")
    Path(str(out) + ".tmp").replace(out)
    return {"folded_fp16_casts": folded, "rewritten_subs": subs, "excluded": exclude, "quantized_ops": list(QUANTIZED_OPS)}


def embedding_parity(fp32: Path, int8: Path, images: list[np.ndarray]) -> dict:
    """Cosine between the fp32 and int8 embeddings of each pixel (mean, 1st percentile, min)
    and the time of both on the same inputs (ratio only: the machine may be busy)."""
    from .export import _session

    a, b = _session(fp32), _session(int8)
    cos, ta, tb = [], 0.0, 0.0
    for img in images:
        t = time.perf_counter()
        (fa,) = a.run(["features"], {"image": img})
        ta += time.perf_counter() - t
        t = time.perf_counter()
        (fb,) = b.run(["features"], {"image": img})
        tb += time.perf_counter() - t
        na = fa[0] / np.maximum(np.linalg.norm(fa[0], axis=0, keepdims=True), 1e-12)
        nb = fb[0] / np.maximum(np.linalg.norm(fb[0], axis=0, keepdims=True), 1e-12)
        cos.append((na * nb).sum(0).ravel())
    c = np.concatenate(cos)
    return {
        "pixels": int(c.size),
        "cosine_mean": float(c.mean()),
        "cosine_p1": float(np.percentile(c, 1)),
        "cosine_min": float(c.min()),
        "time_fp32_s": ta,
        "time_int8_s": tb,
        "speedup": ta / tb if tb > 0 else None,
    }


def jp_parity(bundle: Path, pairs: list, dataset_name: str, seed: int) -> list[dict]:
    """JP (the training protocol) of the fp32 and int8 features, cosine and MLP heads, on
    held-out synthetic ``pairs``."""
    from .eval import OnnxSimilarity, evaluate

    sims = []
    for features, tag in (("features.onnx", "fp32"), (INT8_FILE, "int8")):
        if (bundle / "mlp.onnx").exists():
            sims.append(OnnxSimilarity(bundle, use_mlp=True, features_file=features, name=f"{tag} mlp"))
        sims.append(OnnxSimilarity(bundle, use_mlp=False, features_file=features, name=f"{tag} cosine"))
    rows = evaluate(sims, pairs, seed=seed, dataset_name=dataset_name)["rows"]
    return [{"name": r["name"], "jp_percent": r["jp_percent"], "u_range": r["u_range"]} for r in rows]


def card_section(report: dict) -> str:
    p = report["embedding_parity"]
    lines = [
        CARD_HEADING,
        "",
        "Static int8 quantisation (QDQ, opset 17) of `features.onnx` for ONNX Runtime on CPUs, written by "
        f"`{report['command']}`. The engine uses it with `--precision int8`, or by default (`auto`) when the "
        "runtime is ONNX Runtime on the CPU; tract and GPUs run the fp32 `features.onnx`.",
        "",
        f"- Calibration: {report['calibration']}.",
        f"- Quantised: {', '.join(report['quantize']['quantized_ops'])}; kept float: {len(report['quantize']['excluded'])} "
        "convolutions (each branch's first, on one channel); the embedding is dequantised to float"
        + (f"; {report['quantize']['rewritten_subs']} `1 - sigmoid` rewritten to stay in int8" if report['quantize'].get('rewritten_subs') else "") + ".",
        f"- Embedding cosine to fp32 on {p['pixels']} held-out pixels: mean {p['cosine_mean']:.5f}, "
        f"1st percentile {p['cosine_p1']:.4f}, min {p['cosine_min']:.4f}.",
        f"- Time on the same inputs, ONNX Runtime CPU, this machine: fp32 {p['time_fp32_s']:.2f} s, "
        f"int8 {p['time_int8_s']:.2f} s (×{p['speedup']:.2f}).",
    ]
    if report.get("jp"):
        lines += ["", f"JP % on {report['val']} (training protocol):", "", "| features | head | JP % |", "|---|---|---|"]
        for r in report["jp"]:
            tag, head = r["name"].split(" ", 1)
            lines.append(f"| {tag} | {head} | {r['jp_percent']:.2f} |")
    return "\n".join(lines) + "\n"


def replace_card_section(card: Path, section: str) -> None:
    text = card.read_text() if card.exists() else ""
    if CARD_HEADING in text:
        head, _, rest = text.partition(CARD_HEADING)
        nxt = rest.find("\n## ")
        text = head + section + (rest[nxt + 1 :] if nxt >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    card.write_text(text)


def run_quantize(cfg: QuantizeConfig, *, command: str, log=print) -> dict:
    import onnx

    bundle = Path(cfg.bundle)
    features = bundle / "features.onnx"
    if not features.is_file():
        raise FileNotFoundError(f"{features}: missing (give a bundle folder with features.onnx)")
    meta = {p.key: p.value for p in onnx.load(str(features), load_external_data=False).metadata_props}
    pad = int(meta.get("deepsim.pad_multiple", "1"))
    crops = calibration_crops(cfg, pad)
    sources = [s for s in ([f"synthetic training pairs {cfg.synth}"] if cfg.synth else []) + [f"pair {p}" for p in cfg.pairs]]
    calibration = (
        f"{len(crops)} crops of {crops[0].shape[-1]}² from {'; '.join(sources)} (seed {cfg.seed}), "
        f"activations by the {CALIBRATION_PERCENTILE}th percentile"
    )
    log(f"calibrating on {calibration}")
    t = time.perf_counter()
    q = quantize_features(features, bundle / INT8_FILE, crops, description=calibration)
    log(f"wrote {bundle / INT8_FILE} in {time.perf_counter() - t:.0f} s ({len(q['excluded'])} convolutions kept float)")
    val_pairs = []
    if cfg.val:
        from .data.pairs import load_pairs

        val_pairs = load_pairs(cfg.val, purpose="eval")[: cfg.val_pairs]
    held = [to_crop(p.left, cfg.crop, pad) for p in val_pairs] or crops[: max(1, len(crops) // 4)]
    parity = embedding_parity(features, bundle / INT8_FILE, held)
    log(
        f"embedding cosine to fp32: mean {parity['cosine_mean']:.5f}, p1 {parity['cosine_p1']:.4f}; "
        f"time fp32 {parity['time_fp32_s']:.2f} s, int8 {parity['time_int8_s']:.2f} s"
    )
    report = {"bundle": str(bundle), "command": command, "calibration": calibration, "quantize": q,
              "embedding_parity": parity, "val": cfg.val, "jp": None}
    if cfg.val:
        report["jp"] = jp_parity(bundle, val_pairs, Path(cfg.val).name, cfg.seed)
        for r in report["jp"]:
            log(f"JP {r['name']}: {r['jp_percent']:.2f} %")
    (bundle / "quantize.json").write_text(json.dumps(report, indent=1) + "\n")
    replace_card_section(bundle / "card.md", card_section(report))
    return report


def to_crop(image: np.ndarray, size: int, pad: int) -> np.ndarray:
    """The top-left ``size``² of an image (rounded down to the pad multiple), as ``[1, 1, S, S]``."""
    h, w = image.shape
    s = min(size, h, w) // pad * pad
    return np.ascontiguousarray(image[None, None, :s, :s], dtype=np.float32)
