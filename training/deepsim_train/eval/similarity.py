"""Similarity backends used by the evaluation: a PyTorch model, an exported ONNX bundle, NCC.

A backend turns one grey image (``[H, W]`` float32 in ``[0, 1]``) into embeddings
``[C, H, W]`` (:meth:`features`) and scores pairs of embeddings ``[N, C] x [N, C] -> [N]`` in
``[0, 1]`` (:meth:`score`): the MLP's sigmoid, or ``(1 + cos) / 2`` in cosine mode (so that the
cost ``1 - s`` equals the engine's cosine cost ``(1 - cos) / 2``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..models import PatchFeatures
from ..sampling import embed, pad_to_multiple


class Similarity:
    name: str = "?"
    mode: str = "cosine"  # or "mlp"

    def features(self, image: np.ndarray) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def score(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        if self.mode == "cosine":
            return (1.0 + F.cosine_similarity(left, right, dim=-1, eps=1e-6)) / 2.0
        return self._mlp_score(left, right)

    def _mlp_score(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class TorchSimilarity(Similarity):
    """A feature extractor (and optionally the MLP) in PyTorch, eval mode, no gradient."""

    def __init__(self, net: torch.nn.Module, mlp: torch.nn.Module | None = None, *, name: str = "torch", chunk: int = 65536):
        self.net = net.eval()
        self.mlp = None if mlp is None else mlp.eval()
        self.mode = "mlp" if mlp is not None else "cosine"
        self.name = name
        self.chunk = chunk

    @torch.no_grad()
    def features(self, image: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
        return embed(self.net, x)[0]

    @torch.no_grad()
    def _mlp_score(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [self.mlp.similarity(left[i : i + self.chunk], right[i : i + self.chunk]) for i in range(0, left.shape[0], self.chunk)]
        )


def ncc_similarity(window: int = 7) -> TorchSimilarity:
    """NCC over a ``window x window`` window, as a similarity in [0, 1]: ``(1 + ncc) / 2``.

    Computed as the cosine of zero-mean patch features (:class:`PatchFeatures`), which is the
    NCC of the two windows; the right window is interpolated at sub-pixel columns exactly as the
    learned embeddings are, so the baseline is sampled the same way."""
    return TorchSimilarity(PatchFeatures(window), None, name=f"ncc{window}x{window}")


class OnnxSimilarity(Similarity):
    """An exported bundle run by onnxruntime (``features.onnx`` [+ ``mlp.onnx``]); ``features_file``
    selects another feature extractor of the bundle (e.g. ``features.int8.onnx``)."""

    def __init__(
        self,
        bundle: str | Path,
        *,
        use_mlp: bool = True,
        name: str | None = None,
        chunk: int = 65536,
        features_file: str = "features.onnx",
    ):
        import onnx
        import onnxruntime as ort

        bundle = Path(bundle)
        self.name = name or bundle.name
        so = ort.SessionOptions()
        so.log_severity_level = 3
        self.feat = ort.InferenceSession(str(bundle / features_file), so, providers=["CPUExecutionProvider"])
        meta = {p.key: p.value for p in onnx.load(str(bundle / features_file), load_external_data=False).metadata_props}
        self.pad_multiple = int(meta.get("deepsim.pad_multiple", "1"))
        mlp_path = bundle / "mlp.onnx"
        self.mlp = ort.InferenceSession(str(mlp_path), so, providers=["CPUExecutionProvider"]) if use_mlp and mlp_path.exists() else None
        self.mode = "mlp" if self.mlp is not None else "cosine"
        self.chunk = chunk

    def features(self, image: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
        xp, (h, w) = pad_to_multiple(x, self.pad_multiple)
        (out,) = self.feat.run(["features"], {"image": xp.numpy()})
        return torch.from_numpy(out[0, :, :h, :w])

    def _mlp_score(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        outs = []
        for i in range(0, left.shape[0], self.chunk):
            (s,) = self.mlp.run(
                ["similarity"],
                {"left": left[i : i + self.chunk].numpy().astype(np.float32), "right": right[i : i + self.chunk].numpy().astype(np.float32)},
            )
            outs.append(torch.from_numpy(s))
        return torch.cat(outs)
