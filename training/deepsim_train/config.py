"""Training configuration: nested dataclasses, checked entirely before any computation.

Unknown keys are errors that list the valid keys; the resolved configuration is saved next to
the outputs (``OUTPUT_DIR/config.resolved.yaml``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .data.crops import AugmentConfig
from .losses import LossConfig
from .sampling import MiningSchedule


@dataclass
class ModelConfig:
    arch: str = "msaff"
    options: dict = field(default_factory=dict)  # keyword options of the registered builder
    mlp_hidden: int = 384
    mlp_depth: int = 3
    freeze_bn: bool = False  # BatchNorm in eval mode throughout (set for weights imported from a bundle: BN folded)


@dataclass
class DataConfig:
    train: list = field(default_factory=list)  # [{path: ..., format: auto|synth|middlebury}]
    val: list = field(default_factory=list)
    crop_height: int = 256
    crop_width: int = 256
    right_extra: int = 64  # the right crop starts this many columns further left
    samples_per_epoch: int = 1000
    val_samples: int = 32
    num_workers: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 1e-2
    batch_size: int = 2  # per device
    epochs: int = 50
    max_steps: int = -1  # > 0 stops earlier
    precision: str = "32"  # "16-mixed" / "bf16-mixed" on GPU
    grad_clip: float = 0.0
    warmup_steps: int = 0
    cosine_decay: bool = False


@dataclass
class TrainerConfig:
    accelerator: str = "auto"
    devices: Any = 1
    strategy: str = "auto"
    num_nodes: int = 1
    log_every_n_steps: int = 10
    val_every_n_epochs: int = 1
    checkpoint_every_n_steps: int = 0  # 0: at the end of every epoch


@dataclass
class TrainConfig:
    seed: int = 0
    output_dir: str = "runs/default"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    sampling: MiningSchedule = field(default_factory=MiningSchedule)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def validate(self) -> None:
        from .models import build_feature_extractor, is_trainable, list_models

        if self.model.arch not in list_models():
            raise ValueError(f"model.arch {self.model.arch!r} unknown; valid choices: {', '.join(list_models())}")
        if not is_trainable(self.model.arch):
            raise ValueError(f"model.arch {self.model.arch!r} has no parameters to train")
        net = build_feature_extractor(self.model.arch, **self.model.options)
        m = net.pad_multiple
        d = self.data
        for k, v in (("crop_height", d.crop_height), ("crop_width", d.crop_width), ("crop_width + right_extra", d.crop_width + d.right_extra)):
            if v <= 0 or v % m:
                raise ValueError(f"data.{k} = {v} must be a positive multiple of {m} (pad multiple of {self.model.arch})")
        if d.right_extra < 0:
            raise ValueError(f"data.right_extra must be >= 0, got {d.right_extra}")
        if not d.train:
            raise ValueError("data.train is empty: give at least one dataset {path: ...}")
        for s in d.train + d.val:
            if not isinstance(s, dict) or "path" not in s:
                raise ValueError(f"data.train/val entries are {{path: ..., format: ...}}, got {s!r}")
            unknown = set(s) - {"path", "format"}
            if unknown:
                raise ValueError(f"data source {s!r}: unknown keys {sorted(unknown)}; valid: format, path")
        if self.optim.batch_size < 1 or self.optim.lr <= 0:
            raise ValueError(f"optim: need batch_size >= 1 and lr > 0, got {self.optim.batch_size}, {self.optim.lr}")
        if self.optim.epochs < 1 and self.optim.max_steps <= 0:
            raise ValueError("optim: give epochs >= 1 or max_steps > 0")
        valid_prec = ("32", "32-true", "16-mixed", "bf16-mixed", "64")
        if str(self.optim.precision) not in valid_prec:
            raise ValueError(f"optim.precision {self.optim.precision!r}; valid choices: {', '.join(valid_prec)}")

    def to_dict(self) -> dict:
        return asdict(self)


def _from_dict(cls, data: dict, where: str):
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ValueError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ValueError(f"{where or 'config'}: unknown keys {sorted(unknown)}; valid keys: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, value in data.items():
        f = fields[name]
        sub = f.default_factory if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
        if sub is not None and dataclasses.is_dataclass(sub):
            kwargs[name] = _from_dict(sub, value, f"{where}.{name}".lstrip("."))
        else:
            kwargs[name] = value
    return cls(**kwargs)


def config_from_dict(data: dict) -> TrainConfig:
    cfg = _from_dict(TrainConfig, data, "")
    cfg.validate()
    return cfg


def load_config(path: str | Path, overrides: dict | None = None) -> TrainConfig:
    """Read a YAML config; ``overrides`` is a flat ``{"optim.lr": 1e-4, ...}`` mapping."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    for key, value in (overrides or {}).items():
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return config_from_dict(data)


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
