"""Convert a TorchScript feature extractor / MLP pair (``.pt``) into a contract bundle.

The TorchScript modules may come from elsewhere (e.g. models trained for MicMac) and follow
other conventions, so the conversion wraps them:

* features: ``image [1,1,H,W]`` in [0, 1] -> optional ``(x - mean) / std`` (``--mean``/``--std``;
  leave them out when the module normalises by itself, as ours do) -> module -> ``[1,C,H,W]``;
* MLP: ``left, right [M, C]`` -> the module, called on ``cat([left, right], -1)``
  (``--mlp-input concat``, default) or on ``(left, right)`` (``pair``) -> ``[M]`` or ``[M, 1]``
  -> sigmoid unless ``--mlp-output prob``.

Usage::

    python -m deepsim_train.convert_torchscript --features f.pt [--mlp m.pt] --out BUNDLE \\
        --arch msaff --pad-multiple 8 [--mean 0.434 --std 0.195] [--fp16]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import nn


class _NormThen(nn.Module):
    """Scriptable: optional ``(x - mean) / std`` then the TorchScript module."""

    def __init__(self, module: torch.jit.ScriptModule, mean: float, std: float, do_norm: bool):
        super().__init__()
        self.module = module
        self.do_norm = do_norm
        self.register_buffer("mean", torch.tensor(float(mean)).reshape(1, 1, 1, 1))
        self.register_buffer("std", torch.tensor(float(std)).reshape(1, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.do_norm:
            x = (x - self.mean) / self.std
        return self.module(x)


class _MLPConcat(nn.Module):
    """Scriptable: ``left, right [M, C]`` -> module(cat) -> similarity ``[M]``."""

    def __init__(self, module: torch.jit.ScriptModule, outputs_prob: bool):
        super().__init__()
        self.module = module
        self.outputs_prob = outputs_prob

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        y = self.module(torch.cat([left, right], dim=-1)).reshape(-1)
        return y if self.outputs_prob else torch.sigmoid(y)


class _MLPPair(nn.Module):
    """Scriptable: ``left, right [M, C]`` -> module(left, right) -> similarity ``[M]``."""

    def __init__(self, module: torch.jit.ScriptModule, outputs_prob: bool):
        super().__init__()
        self.module = module
        self.outputs_prob = outputs_prob

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        y = self.module(left, right).reshape(-1)
        return y if self.outputs_prob else torch.sigmoid(y)


class ScriptedFeatures(nn.Module):
    def __init__(self, module: torch.jit.ScriptModule, *, arch: str, pad_multiple: int, embedding_dim: int,
                 mean: float | None = None, std: float | None = None, normalization: str | None = None):
        super().__init__()
        self.module = module
        self.arch = arch
        self.pad_multiple = pad_multiple
        self.embedding_dim = embedding_dim
        self.do_norm = mean is not None
        self.register_buffer("mean", torch.tensor(float(mean if mean is not None else 0.0)).reshape(1, 1, 1, 1))
        self.register_buffer("std", torch.tensor(float(std if std is not None else 1.0)).reshape(1, 1, 1, 1))
        # TorchScript modules cannot be called from a trace of a Python module, so the ONNX
        # export runs this scripted equivalent (see deepsim_train.export: ``onnx_module``).
        self.onnx_module = torch.jit.script(_NormThen(module, self.mean.item(), self.std.item(), self.do_norm))
        self._norm = normalization or (
            f"x/255 (8-bit) or 2-98% stretch (other types), then (x-{mean:.3f})/{std:.3f}" if self.do_norm
            else "x/255 (8-bit) or 2-98% stretch (other types); further normalisation inside the TorchScript module"
        )

    def normalization_string(self) -> str:
        return self._norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.onnx_module(x)


class ScriptedMLP(nn.Module):
    """Returns logits (the bundle export adds the sigmoid), or probabilities mapped to logits."""

    def __init__(self, module: torch.jit.ScriptModule, *, embedding_dim: int, concat: bool = True, outputs_prob: bool = False):
        super().__init__()
        self.module = module
        self.embedding_dim = embedding_dim
        self.concat = concat
        self.outputs_prob = outputs_prob
        self.onnx_module = torch.jit.script((_MLPConcat if concat else _MLPPair)(module, outputs_prob))  # sigmoid inside

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        y = self.module(torch.cat([left, right], dim=-1)) if self.concat else self.module(left, right)
        y = y.reshape(-1)
        if self.outputs_prob:
            y = torch.logit(y.clamp(1e-7, 1 - 1e-7))
        return y


def convert(features: str | Path, out: str | Path, *, mlp: str | Path | None = None, arch: str, pad_multiple: int,
            embedding_dim: int | None = None, mean: float | None = None, std: float | None = None,
            mlp_input: str = "concat", mlp_output: str = "logit", fp16: bool = False,
            real_images: dict[str, np.ndarray] | None = None) -> dict:
    from .export import export_bundle

    if mlp_input not in ("concat", "pair"):
        raise ValueError(f"mlp_input must be 'concat' or 'pair', got {mlp_input!r}")
    if mlp_output not in ("logit", "prob"):
        raise ValueError(f"mlp_output must be 'logit' or 'prob', got {mlp_output!r}")
    if (mean is None) != (std is None):
        raise ValueError("give both --mean and --std, or neither")
    fmod = torch.jit.load(str(features), map_location="cpu").eval()
    if embedding_dim is None:
        with torch.no_grad():
            x = torch.rand(1, 1, 2 * max(pad_multiple, 8), 2 * max(pad_multiple, 8))
            embedding_dim = int(fmod(((x - mean) / std) if mean is not None else x).shape[1])
    net = ScriptedFeatures(fmod, arch=arch, pad_multiple=pad_multiple, embedding_dim=embedding_dim, mean=mean, std=std)
    mnet = None
    if mlp is not None:
        mmod = torch.jit.load(str(mlp), map_location="cpu").eval()
        mnet = ScriptedMLP(mmod, embedding_dim=embedding_dim, concat=mlp_input == "concat", outputs_prob=mlp_output == "prob")
    return export_bundle(
        net, mnet, out, fp16=fp16, real_images=real_images,
        card={"training_data": f"converted from TorchScript {Path(features).name}" + (f" + {Path(mlp).name}" if mlp else ""),
              "command": f"python -m deepsim_train.convert_torchscript --features {features}" + (f" --mlp {mlp}" if mlp else "")
              + f" --out {out} --arch {arch} --pad-multiple {pad_multiple}"},
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="deepsim-convert-torchscript", description=__doc__.split("\n\n")[0])
    ap.add_argument("--features", required=True, help="TorchScript feature extractor (.pt)")
    ap.add_argument("--mlp", help="TorchScript decision MLP (.pt), optional")
    ap.add_argument("--out", required=True, help="bundle folder to write")
    ap.add_argument("--arch", required=True, help="architecture name for deepsim.arch (e.g. msaff)")
    ap.add_argument("--pad-multiple", type=int, required=True)
    ap.add_argument("--embedding-dim", type=int, help="C (default: probed)")
    ap.add_argument("--mean", type=float)
    ap.add_argument("--std", type=float)
    ap.add_argument("--mlp-input", choices=("concat", "pair"), default="concat")
    ap.add_argument("--mlp-output", choices=("logit", "prob"), default="logit")
    ap.add_argument("--fp16", action="store_true", help="store weights as float16")
    a = ap.parse_args(argv)
    rep = convert(a.features, a.out, mlp=a.mlp, arch=a.arch, pad_multiple=a.pad_multiple, embedding_dim=a.embedding_dim,
                  mean=a.mean, std=a.std, mlp_input=a.mlp_input, mlp_output=a.mlp_output, fp16=a.fp16)
    for c in rep["parity"]:
        print(f"{c['what']}: max|diff| {c['max_abs_diff']:.2e} (tol {c['tolerance']:.1e}) {'ok' if c['ok'] else 'FAILED'}")
    print(f"bundle written to {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
