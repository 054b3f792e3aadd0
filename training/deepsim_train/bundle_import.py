"""Load an exported bundle (``features.onnx`` [+ ``mlp.onnx``]) back into the PyTorch models.

Why: the shipped bundles are the only record of their weights (no PyTorch checkpoint was
committed), so fine-tuning or adapting one has to start from its ONNX files.

How the weights are matched. The exporter folds every BatchNorm into the convolution before it,
so the ONNX graph holds one ``Conv`` (weight + bias) per PyTorch convolution call and no
BatchNorm. We run the freshly built PyTorch model once with forward hooks and record, in call
order, every ``Conv2d`` / ``ConvTranspose2d`` call and the BatchNorm (if any) that consumes its
output. The legacy exporter writes nodes in the same call order, so the ``i``-th ONNX ``Conv`` /
``ConvTranspose`` node belongs to the ``i``-th recorded call; every pairing is checked by
kind and shape, and a module called several times (MS-AFF's shared stem) must receive the same
weights from each of its nodes. The MLP's ``Gemm`` nodes map onto its ``Linear`` layers in order.

BatchNorm after loading. A folded BatchNorm ``gamma (x - mu) / sqrt(var + eps) + beta`` has
become part of the conv weight and bias. Its PyTorch module is set to an affine identity:
``weight = 1``, ``running_mean = 0``, ``running_var = 1 - eps`` (so that ``sqrt(var + eps)`` is
exactly 1), and ``bias`` = the folded conv bias. It must then stay in eval mode (its running
statistics are meaningless for batch statistics): :func:`freeze_batchnorm` does that; the affine
``weight`` / ``bias`` remain trainable (a per-channel scale and shift, folded again at export).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .models import build_feature_extractor, build_mlp

_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_CONV_TYPES = (nn.Conv2d, nn.ConvTranspose2d)


@dataclass
class ImportReport:
    """What :func:`load_bundle` did (for logs and cards)."""

    bundle: str
    arch: str
    conv_nodes: int
    conv_modules: int
    folded_batchnorms: int
    mlp_layers: int = 0
    notes: list[str] = field(default_factory=list)


class BundleImportError(ValueError):
    """A bundle whose graph cannot be mapped onto the PyTorch model (message says why)."""


def _onnx_constants(model) -> dict[str, np.ndarray]:
    """Every constant tensor of the graph by name: initialisers, ``Constant`` nodes, and the
    float32 outputs of the ``Cast`` nodes that fp16 weight storage puts in front of them."""
    from onnx import numpy_helper

    g = model.graph
    values = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    for node in g.node:
        if node.op_type == "Constant" and node.attribute:
            for a in node.attribute:
                if a.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(a.t)
    for node in g.node:  # Cast / Identity of a constant is a constant
        if node.op_type in ("Cast", "Identity") and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]].astype(np.float32)
    return values


def _param_nodes(model, ops: tuple[str, ...]) -> list[tuple[str, np.ndarray, np.ndarray | None, dict]]:
    values = _onnx_constants(model)
    out = []
    for node in model.graph.node:
        if node.op_type not in ops:
            continue
        if len(node.input) < 2 or node.input[1] not in values:
            raise BundleImportError(f"{node.op_type} node {node.name!r}: its weight is not a constant of the graph")
        w = values[node.input[1]].astype(np.float32)
        b = values[node.input[2]].astype(np.float32) if len(node.input) > 2 and node.input[2] else None
        attrs = {a.name: a for a in node.attribute}
        out.append((node.op_type, w, b, attrs))
    return out


def _call_order(net: nn.Module, example: torch.Tensor) -> list[tuple[nn.Module, nn.Module | None]]:
    """``(conv module, BatchNorm consuming its output or None)`` per conv call, in call order."""
    calls: list[list] = []
    by_output: dict[int, int] = {}
    handles = []

    def conv_hook(mod, inp, out):
        by_output[id(out)] = len(calls)
        calls.append([mod, None, out])  # keep ``out`` alive so its id stays unique

    def bn_hook(mod, inp):
        i = by_output.get(id(inp[0]))
        if i is not None:
            calls[i][1] = mod

    for m in net.modules():
        if isinstance(m, _CONV_TYPES):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, _BN_TYPES):
            handles.append(m.register_forward_pre_hook(bn_hook))
    try:
        with torch.no_grad():
            net.eval()(example)
    finally:
        for h in handles:
            h.remove()
    return [(c[0], c[1]) for c in calls]


def set_identity_batchnorm(bn: nn.Module, bias: torch.Tensor | None = None) -> None:
    """Make ``bn`` (in eval mode) compute ``x + bias``: weight 1, mean 0, var ``1 - eps``."""
    with torch.no_grad():
        bn.weight.fill_(1.0)
        bn.bias.copy_(bias if bias is not None else torch.zeros_like(bn.bias))
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)
        if bn.num_batches_tracked is not None:
            bn.num_batches_tracked.zero_()


def freeze_batchnorm(module: nn.Module) -> list[nn.Module]:
    """Put every BatchNorm of ``module`` in eval mode (running statistics frozen) and return
    them; call again after every ``module.train()``."""
    bns = [m for m in module.modules() if isinstance(m, _BN_TYPES)]
    for m in bns:
        m.eval()
    return bns


def _parse_normalization(text: str) -> tuple[float, float] | None:
    m = re.search(r"\(x\s*-\s*([-+0-9.eE]+)\)\s*/\s*([-+0-9.eE]+)", text or "")
    return (float(m.group(1)), float(m.group(2))) if m else None


def load_features(path: str | Path, net: nn.Module) -> ImportReport:
    """Copy the weights of ``features.onnx`` at ``path`` into ``net`` (built with the same
    architecture and options); BatchNorms become affine identities (module docstring)."""
    import onnx

    path = Path(path)
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    emb = int(meta.get("deepsim.embedding_dim", getattr(net, "embedding_dim", -1)))
    if emb != getattr(net, "embedding_dim", emb):
        raise BundleImportError(f"{path}: embedding_dim {emb} but the PyTorch model has {net.embedding_dim}; build it with the bundle's options")
    if any(n.op_type == "BatchNormalization" for n in model.graph.node):
        raise BundleImportError(f"{path}: the graph has unfolded BatchNormalization nodes; only folded exports are supported")
    nodes = _param_nodes(model, ("Conv", "ConvTranspose"))
    m = int(getattr(net, "pad_multiple", 1))
    side = max(4 * m, 32)
    calls = _call_order(net, torch.rand(1, 1, side, side))
    if len(nodes) != len(calls):
        raise BundleImportError(
            f"{path}: {len(nodes)} Conv/ConvTranspose nodes but the PyTorch model makes {len(calls)} conv calls; "
            f"wrong architecture or options (bundle arch {meta.get('deepsim.arch', '?')!r})"
        )
    assigned: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
    folded = 0
    for i, ((op, w, b, _attrs), (conv, bn)) in enumerate(zip(nodes, calls)):
        kind = "ConvTranspose" if isinstance(conv, nn.ConvTranspose2d) else "Conv"
        if op != kind or tuple(w.shape) != tuple(conv.weight.shape):
            raise BundleImportError(
                f"{path}: node {i} is {op} {list(w.shape)} but conv call {i} is {kind} {list(conv.weight.shape)}; "
                "the bundle was not exported from this architecture"
            )
        key = id(conv)
        if key in assigned:  # a shared module: every node must carry the same weights
            w0, b0 = assigned[key]
            same_b = (b is None and b0 is None) or (b is not None and b0 is not None and np.allclose(b, b0, atol=1e-6))
            if not (np.allclose(w, w0, atol=1e-6) and same_b):
                raise BundleImportError(f"{path}: module called several times got different weights from nodes (node {i})")
            continue
        assigned[key] = (w, b)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(w))
            bias = torch.from_numpy(b) if b is not None else None
            if bn is not None:
                if conv.bias is not None:  # conv bias and BN both present: keep the bias in the conv
                    conv.bias.copy_(bias if bias is not None else torch.zeros_like(conv.bias))
                    set_identity_batchnorm(bn)
                else:
                    set_identity_batchnorm(bn, bias)
                folded += 1
            elif conv.bias is not None:
                conv.bias.copy_(bias if bias is not None else torch.zeros_like(conv.bias))
            elif bias is not None and np.abs(b).max() > 0:
                raise BundleImportError(f"{path}: node {i} has a bias but conv call {i} has neither bias nor BatchNorm")
    notes = []
    norm = _parse_normalization(meta.get("deepsim.normalization", ""))
    if norm is not None and hasattr(net, "normalize"):
        with torch.no_grad():
            net.normalize.mean.fill_(norm[0])
            net.normalize.std.fill_(norm[1])
    else:
        notes.append("normalization not found in the metadata: kept the model's constants")
    n_bn = sum(1 for x in net.modules() if isinstance(x, _BN_TYPES))
    if folded != n_bn:
        raise BundleImportError(f"{path}: {n_bn} BatchNorm modules but only {folded} follow a convolution; cannot map")
    return ImportReport(str(path), meta.get("deepsim.arch", "?"), len(nodes), len(assigned), folded, notes=notes)


def mlp_from_onnx(path: str | Path) -> nn.Module:
    """Build a :class:`~deepsim_train.models.DecisionMLP` from ``mlp.onnx`` (sizes from its Gemm nodes)."""
    import onnx

    path = Path(path)
    model = onnx.load(str(path))
    gemms = _param_nodes(model, ("Gemm",))
    if len(gemms) < 2:
        raise BundleImportError(f"{path}: expected >= 2 Gemm nodes (Linear layers), found {len(gemms)}")
    mats = []
    for op, w, b, attrs in gemms:
        trans_b = attrs["transB"].i if "transB" in attrs else 0
        mats.append((w if trans_b else w.T, b))  # torch Linear weight is [out, in]
    cin = mats[0][0].shape[1]
    hidden = mats[0][0].shape[0]
    if cin % 2:
        raise BundleImportError(f"{path}: first layer takes {cin} inputs, expected 2 x embedding_dim")
    mlp = build_mlp(cin // 2, hidden=hidden, depth=len(mats) - 1)
    linears = [m for m in mlp.modules() if isinstance(m, nn.Linear)]
    for i, ((w, b), lin) in enumerate(zip(mats, linears)):
        if tuple(w.shape) != tuple(lin.weight.shape):
            raise BundleImportError(f"{path}: Gemm {i} is {list(w.shape)}, Linear {i} is {list(lin.weight.shape)}")
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            lin.bias.copy_(torch.from_numpy(b) if b is not None else torch.zeros_like(lin.bias))
    return mlp


def load_bundle(bundle: str | Path, *, arch: str | None = None, options: dict | None = None,
                with_mlp: bool = True) -> tuple[nn.Module, nn.Module | None, ImportReport]:
    """``(feature extractor, MLP or None, report)`` with the weights of ``bundle``.

    ``arch`` defaults to the bundle's ``deepsim.arch``; ``options`` are the builder's keyword
    options (needed only for non-default widths, e.g. ``arch="msaff_tiny"``).
    """
    from .export import read_metadata

    b = Path(bundle)
    fpath = b / "features.onnx"
    if not fpath.is_file():
        raise BundleImportError(f"{b}: no features.onnx; give a model bundle folder (e.g. models/msaff)")
    meta = read_metadata(fpath)
    arch = arch or meta.get("deepsim.arch")
    if not arch:
        raise BundleImportError(f"{fpath}: no deepsim.arch metadata; pass arch explicitly")
    net = build_feature_extractor(arch, **(options or {}))
    rep = load_features(fpath, net)
    mlp = None
    if with_mlp and (b / "mlp.onnx").is_file():
        mlp = mlp_from_onnx(b / "mlp.onnx")
        rep.mlp_layers = sum(1 for m in mlp.modules() if isinstance(m, nn.Linear))
        if mlp.embedding_dim != net.embedding_dim:
            raise BundleImportError(f"{b}: mlp.onnx takes {mlp.embedding_dim}-d embeddings, features.onnx gives {net.embedding_dim}")
    net.eval()
    freeze_batchnorm(net)
    return net, mlp, rep


def fold_batchnorm_(net: nn.Module) -> int:
    """Fold every BatchNorm (eval statistics) into the convolution before it, in place: the conv
    gets ``W * gamma / sigma``, the BatchNorm becomes an affine identity carrying the shift. The
    function is unchanged; afterwards every weight the ONNX export writes is a parameter as such
    (nothing is multiplied at export), so :func:`round_to_fp16_` makes the PyTorch model equal to
    the fp16-stored bundle. Returns the number of folded BatchNorms."""
    m = int(getattr(net, "pad_multiple", 1))
    side = max(4 * m, 32)
    n = 0
    done: set[int] = set()
    for conv, bn in _call_order(net, torch.rand(1, 1, side, side)):
        if bn is None or id(conv) in done:  # a shared module (MS-AFF's stem) is folded once
            continue
        done.add(id(conv))
        with torch.no_grad():
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            shift = bn.bias - bn.running_mean * scale
            if isinstance(conv, nn.ConvTranspose2d):
                conv.weight.mul_(scale.view(1, -1, 1, 1))
            else:
                conv.weight.mul_(scale.view(-1, 1, 1, 1))
            if conv.bias is not None:
                shift = shift + conv.bias * scale
                conv.bias.zero_()
            set_identity_batchnorm(bn, shift)
        n += 1
    return n


def round_to_fp16_(module: nn.Module) -> None:
    """Round every floating parameter to the nearest float16 value (kept as float32), in place."""
    with torch.no_grad():
        for p in module.parameters():
            if p.is_floating_point():
                p.copy_(p.half().float())
