"""PyTorch Lightning module and data module (single GPU/CPU, DDP multi-GPU / multi-node)."""

from __future__ import annotations

import math

import lightning as L
import torch
from torch.utils.data import DataLoader

from .config import TrainConfig, config_from_dict
from .data.dataset import CropDataset
from .models import build_feature_extractor, build_mlp
from .steps import contrastive_step


class DeepSimModule(L.LightningModule):
    """Feature extractor + decision MLP trained jointly (BCE on the MLP, hinge on cosine)."""

    def __init__(self, config: dict):
        super().__init__()
        self.save_hyperparameters({"config": config})
        self.cfg: TrainConfig = config_from_dict(config) if isinstance(config, dict) else config
        c = self.cfg
        self.net = build_feature_extractor(c.model.arch, **c.model.options)
        self.mlp = (
            build_mlp(self.net.embedding_dim, hidden=c.model.mlp_hidden, depth=c.model.mlp_depth)
            if c.loss.bce_weight > 0
            else None
        )

    def train(self, mode: bool = True):
        """``nn.Module.train``, keeping BatchNorm frozen when ``model.freeze_bn`` (weights
        imported from a bundle, whose BatchNorms are folded: see :mod:`..bundle_import`)."""
        super().train(mode)
        if mode and self.cfg.model.freeze_bn:
            from .bundle_import import freeze_batchnorm

            freeze_batchnorm(self.net)
        return self

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # Lightning may restore submodule modes without calling train(): freeze again here.
        if self.cfg.model.freeze_bn:
            from .bundle_import import freeze_batchnorm

            freeze_batchnorm(self.net)

    # --- training -------------------------------------------------------------------------
    def _step(self, batch: dict, *, epoch: int) -> dict[str, torch.Tensor]:
        k, u_min, u_max = self.cfg.sampling.at(epoch)
        return contrastive_step(self.net, self.mlp, batch, self.cfg.loss, k=k, u_min=u_min, u_max=u_max)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self._step(batch, epoch=self.current_epoch)
        bs = batch["left"].shape[0]
        self.log("train/loss", out["loss"], prog_bar=True, batch_size=bs, sync_dist=False)
        for k, v in out.items():
            if k != "loss":
                self.log(f"train/{k}", v, batch_size=bs)
        return out["loss"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out = self._step(batch, epoch=self.current_epoch)
        bs = batch["left"].shape[0]
        for k, v in out.items():
            self.log(f"val/{k}", v, batch_size=bs, sync_dist=True, prog_bar=(k == "loss"))

    def on_train_epoch_start(self) -> None:
        dl = self.trainer.train_dataloader
        ds = getattr(dl, "dataset", None)
        if hasattr(ds, "set_epoch"):
            ds.set_epoch(self.current_epoch)

    def configure_optimizers(self):
        o = self.cfg.optim
        opt = torch.optim.AdamW(self.parameters(), lr=o.lr, weight_decay=o.weight_decay)
        if not o.warmup_steps and not o.cosine_decay:
            return opt
        total = max(1, int(self.trainer.estimated_stepping_batches))

        def factor(step: int) -> float:
            if o.warmup_steps and step < o.warmup_steps:
                return (step + 1) / o.warmup_steps
            if o.cosine_decay:
                t = (step - o.warmup_steps) / max(1, total - o.warmup_steps)
                return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
            return 1.0

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class StereoDataModule(L.LightningDataModule):
    def __init__(self, cfg: TrainConfig):
        super().__init__()
        self.cfg = cfg

    def _dataset(self, sources, n: int, seed: int, augment) -> CropDataset:
        d = self.cfg.data
        return CropDataset(
            sources,
            crop_height=d.crop_height,
            crop_width=d.crop_width,
            right_extra=d.right_extra,
            samples_per_epoch=n,
            seed=seed,
            augment=augment,
        )

    def setup(self, stage: str | None = None) -> None:
        d = self.cfg.data
        self.train_set = self._dataset(d.train, d.samples_per_epoch, self.cfg.seed, d.augment)
        self.val_set = self._dataset(d.val, d.val_samples, self.cfg.seed + 1_000_003, None) if d.val else None

    def _loader(self, ds: CropDataset, shuffle: bool) -> DataLoader:
        nw = self.cfg.data.num_workers
        return DataLoader(
            ds,
            batch_size=self.cfg.optim.batch_size,
            shuffle=shuffle,
            num_workers=nw,
            drop_last=shuffle,
            persistent_workers=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, True)

    def val_dataloader(self):
        return self._loader(self.val_set, False) if self.val_set is not None else []
