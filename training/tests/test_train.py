"""Training loop: overfitting a batch, the CLI end to end (train, resume, export, evaluate), DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from deepsim_train.config import config_from_dict, load_config
from deepsim_train.data import CropDataset
from deepsim_train.lightning_module import DeepSimModule

TRAINING = Path(__file__).resolve().parents[1]


def _cfg(data: Path, out: Path, **over) -> dict:
    cfg = {
        "seed": 0,
        "output_dir": str(out),
        "model": {"arch": "msaff_tiny", "mlp_hidden": 32, "mlp_depth": 2},
        "data": {"train": [{"path": str(data)}], "crop_height": 32, "crop_width": 48, "right_extra": 32,
                 "samples_per_epoch": 8, "num_workers": 0},
        "sampling": {"u_min": 1.0, "u_max_start": 4.0, "u_max_end": 6.0, "k_start": 1, "k_end": 3, "ramp_epochs": 2},
        "optim": {"lr": 3e-3, "batch_size": 2, "epochs": 1, "precision": "32"},
        "trainer": {"accelerator": "cpu", "devices": 1, "log_every_n_steps": 1},
    }
    for k, v in over.items():
        node = cfg
        *head, last = k.split(".")
        for h in head:
            node = node.setdefault(h, {})
        node[last] = v
    return cfg


def test_config_checks_everything_up_front(fake_synth, tmp_path):
    with pytest.raises(ValueError, match="unknown keys \\['lrr'\\]; valid keys: .*lr"):
        config_from_dict(_cfg(fake_synth, tmp_path, **{"optim.lrr": 1}))
    with pytest.raises(ValueError, match="multiple of 8"):
        config_from_dict(_cfg(fake_synth, tmp_path, **{"data.crop_width": 44}))
    with pytest.raises(ValueError, match="valid choices: .*unet32"):
        config_from_dict(_cfg(fake_synth, tmp_path, **{"model.arch": "vgg"}))
    with pytest.raises(ValueError, match="no parameters"):
        config_from_dict(_cfg(fake_synth, tmp_path, **{"model.arch": "patch5"}))


@pytest.mark.parametrize("config", sorted((TRAINING / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_example_configs_parse(config, fake_synth):
    cfg = load_config(config, {"data.train": [{"path": str(fake_synth)}]})
    assert cfg.model.arch in ("msaff", "unet32", "unet_attention")


def test_overfits_one_batch(fake_synth, tmp_path):
    """A few AdamW steps on one fixed batch must reduce the joint loss (BCE + hinge)."""
    torch.manual_seed(0)
    cfg = config_from_dict(_cfg(fake_synth, tmp_path))
    module = DeepSimModule(cfg.to_dict())
    ds = CropDataset([fake_synth], crop_height=32, crop_width=48, right_extra=32, samples_per_epoch=4, seed=0)
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    opt = torch.optim.AdamW(module.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        torch.manual_seed(1)  # same negatives every step: a fixed objective
        out = module._step(batch, epoch=0)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:3]), losses


def _run_cli(args: list[str], cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "deepsim_train.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_cli_train_resume_export_evaluate(fake_synth, tmp_path):
    from deepsim_train.cli import main

    out = tmp_path / "run"
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(_cfg(fake_synth, out, **{"data.val": [{"path": str(fake_synth)}], "data.val_samples": 2})))
    assert main(["train", "--config", str(cfg_path), "--no-progress"]) == 0
    ckpt = out / "checkpoints" / "last.ckpt"
    assert ckpt.exists() and (out / "config.resolved.yaml").exists()
    s1 = json.loads((out / "train_summary.json").read_text())
    assert s1["global_step"] == 4
    # resume: one more epoch continues from step 4
    assert main(["train", "--config", str(cfg_path), "--resume", "--epochs", "2", "--no-progress"]) == 0
    s2 = json.loads((out / "train_summary.json").read_text())
    assert s2["global_step"] == 8 and s2["epochs_completed"] == 2
    assert torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"] == 8
    # export the checkpoint to a bundle, evaluate it through onnxruntime next to the checkpoint
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "bundle")]) == 0
    card = (tmp_path / "bundle" / "card.md").read_text()
    assert "msaff" in card and "8 steps" in card
    assert main(["evaluate", "--checkpoint", str(ckpt), "--bundle", str(tmp_path / "bundle"),
                 "--data", str(fake_synth), "--out", str(tmp_path / "eval"), "--ncc-window", "5"]) == 0
    rep = json.loads((tmp_path / "eval" / "jp.json").read_text())
    rows = {r["name"]: r for r in rep["rows"]}
    assert set(rows) == {"msaff_tiny+mlp", "msaff_tiny+cosine", "bundle+mlp(onnx)", "bundle+cosine(onnx)", "ncc5x5"}
    assert abs(rows["msaff_tiny+mlp"]["jp_percent"] - rows["bundle+mlp(onnx)"]["jp_percent"]) < 0.05
    assert abs(rows["msaff_tiny+cosine"]["jp_percent"] - rows["bundle+cosine(onnx)"]["jp_percent"]) < 0.05


def test_ddp_two_processes_gloo(fake_synth, tmp_path):
    """Two CPU processes (gloo), a couple of steps; both ranks must take part."""
    out = tmp_path / "ddp"
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(_cfg(fake_synth, out, **{"optim.max_steps": 2, "data.samples_per_epoch": 16})))
    r = _run_cli(["train", "--config", str(cfg_path), "--devices", "2", "--strategy", "ddp", "--accelerator", "cpu",
                  "--no-progress"], cwd=tmp_path)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["global_step"] == 2
    assert "GLOBAL_RANK: 1" in r.stdout + r.stderr or "Initializing distributed: GLOBAL_RANK: 1" in r.stdout + r.stderr


def test_last_checkpoint_holds_the_final_step_when_max_steps_is_off_the_checkpoint_grid(fake_synth, tmp_path):
    """Regression: with checkpoints every 2 steps and max_steps 3, step 3 used to be lost."""
    from deepsim_train.cli import main

    out = tmp_path / "run"
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(_cfg(fake_synth, out, **{"optim.max_steps": 3, "trainer.checkpoint_every_n_steps": 2})))
    assert main(["train", "--config", str(cfg_path), "--no-progress"]) == 0
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 3


def test_cli_train_init_from_bundle_keeps_bn_frozen_and_writes_compact(fake_synth, tmp_path):
    """`train --init-from BUNDLE`: weights from the ONNX files, BatchNorm frozen, compact.pt written."""
    from deepsim_train.cli import main
    from deepsim_train.compact import load_compact
    from deepsim_train.export import export_bundle

    cfg = _cfg(fake_synth, tmp_path / "run", **{"optim.max_steps": 2})
    start = DeepSimModule(cfg)
    export_bundle(start.net.eval(), start.mlp, tmp_path / "bundle")
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(cfg_path), "--no-progress", "--init-from", str(tmp_path / "bundle"),
                 "--compact-out", str(tmp_path / "ck" / "c.pt")]) == 0
    net, mlp, blob = load_compact(tmp_path / "ck" / "c.pt")
    assert blob["step"] == 2 and blob["bn_folded"] and mlp is not None
    assert (tmp_path / "run" / "compact.pt").exists()
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    # frozen: the running statistics are still the identity set at import (mean 0, var 1 - eps)
    assert bns and all(float(m.running_mean.abs().max()) == 0.0 for m in bns)
    assert all(torch.allclose(m.running_var.float(), torch.full_like(m.running_var.float(), 1 - m.eps), atol=1e-3) for m in bns)
    with pytest.raises(SystemExit, match="init-from"):
        main(["train", "--config", str(cfg_path), "--no-progress", "--init-from", str(tmp_path / "missing.pt")])
