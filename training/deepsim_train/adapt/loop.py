"""The adaptation run: pseudo-labels, fine-tuning on real + synthetic crops, export.

Each optimizer step uses one batch, either real crops with pseudo-labels or synthetic crops
with exact ground truth (``synth_ratio`` of the steps, evenly interleaved; the synthetic loss is
multiplied by ``synth_weight``). Both go through the training loss
(:func:`deepsim_train.steps.contrastive_step`: cosine hinge + MLP BCE, hard negatives mined
among ``k`` candidates at ``u`` px from the positive). On real crops the positive is the
pseudo-label and the smallest offset is ``u_min_real`` (default 1.5 px, since a pseudo-label can be
off by up to the left-right tolerance); unlabeled pixels carry no loss.

Budget: the run stops at ``steps`` optimizer steps or when ``minutes`` of wall time (of this
and earlier, resumed, invocations) minus ``export_reserve_min`` are spent, whichever first. The
learning rate warms up over ``warmup_steps`` and decays by a cosine over the budget's progress.

State: ``OUT/work/state.pt`` (float32, everything, every ``save_every_min`` and on Ctrl-C /
SIGTERM) resumes an interrupted run on this machine; ``OUT/checkpoint.pt`` (compact: float16
weights, see :mod:`deepsim_train.compact`) is written alongside and is the file to commit, from
which ``--resume`` continues on another machine. ``OUT/work/`` (engine outputs, pseudo-labels,
state) carries a ``.gitignore`` of its own and is never committed.
"""

from __future__ import annotations

import json
import math
import os
import platform
import signal
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..bundle_import import freeze_batchnorm, load_bundle
from ..compact import load_compact_into, restore_optimizer, save_compact
from ..data.crops import AugmentConfig, random_crop
from ..data.pairs import StereoPair
from ..imageio import read_image, to_unit
from ..losses import LossConfig
from ..steps import contrastive_step
from .pairs import find_pairs, parse_range
from .pseudo import LabelStats, find_engine, pseudo_labels, stats_dict

BUNDLE_FILES = ("features.onnx", "mlp.onnx", "card.md", "export.json", "adapt.json", "checkpoint.pt")


@dataclass
class AdaptConfig:
    bundle: str
    pairs: list[str]
    out: str
    synth: str | None = None  # a `deepsim synth` dataset (training seed, never synth-val)
    steps: int = 0  # 0: no step limit (the time budget decides)
    minutes: float = 55.0  # wall budget of the whole run (0: no time limit; then give steps)
    export_reserve_min: float = 3.0
    pseudo: str = "census"  # census | model | agree
    min_confidence: float = 0.2
    agree_px: float = 1.0
    disp_range: str | None = None  # "MIN:MAX" for every pair; default from the width
    synth_ratio: float = 0.5  # share of steps on synthetic batches
    synth_weight: float = 1.0
    lr: float = 2e-4
    weight_decay: float = 1e-2
    warmup_steps: int = 10
    batch_size: int = 2
    crop: int = 192
    k: int = 4  # hard-negative candidates
    u_min: float = 1.0  # synthetic negatives
    u_min_real: float = 1.5  # real negatives (pseudo-labels are +-1 px)
    u_max: float = 16.0
    min_crop_coverage: float = 0.05  # real crops with fewer labelled pixels are redrawn
    bce_weight: float = 1.0
    hinge_weight: float = 1.0
    margin: float = 0.3
    seed: int = 0
    engine: str | None = None
    engine_threads: int = 1
    resume: bool = False
    overwrite: bool = False
    save_every_min: float = 5.0
    progress_every: int = 10
    checkpoint_optimizer: bool = False
    fp16: bool = True
    signals: list[str] = field(default_factory=lambda: ["pseudo", "synth"])

    def validate(self) -> None:
        if Path(self.out).resolve() == Path(self.bundle).resolve():
            raise ValueError("--out must differ from --bundle (the source bundle is never overwritten)")
        if not (Path(self.bundle) / "features.onnx").is_file():
            raise ValueError(f"--bundle {self.bundle}: no features.onnx there; give a model bundle folder (e.g. models/msaff)")
        if self.steps <= 0 and self.minutes <= 0:
            raise ValueError("give --steps N or --minutes M (or both): the run needs a budget")
        if not 0.0 <= self.synth_ratio < 1.0:
            raise ValueError(f"--synth-ratio must be in [0, 1), got {self.synth_ratio}")
        unknown = set(self.signals) - {"pseudo", "synth"}
        if unknown or not self.signals:
            raise ValueError(f"--signals: one or both of 'pseudo' and 'synth'; got {self.signals}")
        if self.use_synth and not self.synth:
            raise ValueError("the synthetic signal needs --synth DIR (a `deepsim synth --seed 1001 ... --right-disparity` dataset) "
                             "or --signals pseudo / --synth-ratio 0 to go without it")
        if self.crop % 8:
            raise ValueError(f"--crop must be a multiple of 8, got {self.crop}")
        if self.disp_range:
            parse_range(self.disp_range)

    @property
    def use_synth(self) -> bool:
        return "synth" in self.signals and self.effective_synth_ratio > 0

    @property
    def effective_synth_ratio(self) -> float:
        """Share of synthetic steps: all of them when the pseudo-label signal is off (the
        ablation control "more synthetic training only"), none when the synthetic one is off."""
        if "pseudo" not in self.signals:
            return 1.0
        return self.synth_ratio if "synth" in self.signals else 0.0


def _hardware() -> str:
    threads = torch.get_num_threads()
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU ({cpu}), {os.cpu_count()} cores visible, torch {threads} thread(s), no GPU" if not torch.cuda.is_available() \
        else f"GPU {torch.cuda.get_device_name(0)}"


def _check_synth(path: Path) -> None:
    man = path / "manifest.json"
    if not man.is_file():
        raise ValueError(f"--synth {path}: no manifest.json; make one with `deepsim synth --out {path} --count 200 --seed 1001 --size 512 --right-disparity`")
    text = man.read_text()
    try:
        m = json.loads(text)
        seed = m.get("seed", (m.get("generator") or {}).get("seed"))
    except (json.JSONDecodeError, AttributeError):
        seed = None
    if seed == 2002:
        raise ValueError(f"--synth {path}: seed 2002 is the held-out synth-val set; never train on it (use seed 1001)")


def _lr_factor(step: int, progress: float, warmup: int) -> float:
    w = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    return w * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


class _Interrupt(Exception):
    pass


def _real_pairs(pairs, labels: list[np.ndarray]) -> list[StereoPair]:
    out = []
    for p, lab in zip(pairs, labels):
        left, right = to_unit(read_image(p.left)), to_unit(read_image(p.right))
        keep = np.isfinite(lab)
        out.append(StereoPair(left, right, lab, keep, keep.copy(), name=p.name))
    return out


def real_batch(pairs: list[StereoPair], rng: np.random.Generator, *, batch: int, crop: int, right_extra: int,
               min_coverage: float, augment: AugmentConfig) -> dict:
    """A batch of real crops; each crop redrawn (up to 20 times) until ``min_coverage`` of its
    pixels carry a pseudo-label and a positive inside the right crop."""
    items = []
    for _ in range(batch):
        best = None
        for _try in range(20):
            p = pairs[int(rng.integers(len(pairs)))]
            s = random_crop(p, height=crop, width=crop, right_extra=right_extra, rng=rng, augment=augment)
            cov = float(s["defined"].float().mean())
            if best is None or cov > best[0]:
                best = (cov, s)
            if cov >= min_coverage:
                break
        items.append(best[1])
    return torch.utils.data.default_collate(items)


def _prepare_out(cfg: AdaptConfig) -> Path:
    out = Path(cfg.out)
    work = out / "work"
    if out.exists() and not cfg.resume:
        present = [f for f in BUNDLE_FILES if (out / f).exists()] + (["work/state.pt"] if (work / "state.pt").exists() else [])
        if present and not cfg.overwrite:
            raise ValueError(f"--out {out} already holds {', '.join(present)}: --resume to continue that run, or --overwrite to start again")
        for f in present:
            (out / f).unlink()
    work.mkdir(parents=True, exist_ok=True)
    (work / ".gitignore").write_text("# engine outputs, pseudo-labels and float32 state of `deepsim-train adapt`: never committed\n*\n")
    return out


def run_adapt(cfg: AdaptConfig, log=print) -> dict:
    """Run the whole adaptation (module docstring); returns the summary written to ``adapt.json``."""
    t_start = time.time()
    cfg.validate()
    engine = find_engine(cfg.engine)
    disp_range = parse_range(cfg.disp_range) if cfg.disp_range else None
    pairs = find_pairs(cfg.pairs, disp_range=disp_range, log=log)
    if cfg.use_synth:
        _check_synth(Path(cfg.synth))
    out = _prepare_out(cfg)
    work = out / "work"
    torch.manual_seed(cfg.seed)

    # --- model ---------------------------------------------------------------------------
    state_path = work / "state.pt"
    compact_path = out / "checkpoint.pt"
    net, mlp, rep = load_bundle(cfg.bundle)
    arch = getattr(net, "arch", "?")
    log(f"loaded {cfg.bundle}: {arch}, {rep.conv_nodes} conv nodes onto {rep.conv_modules} modules, "
        f"{rep.folded_batchnorms} BatchNorms set to frozen affine identities, MLP {'yes' if mlp is not None else 'no'}")
    step, train_seconds, history, resumed_from = 0, 0.0, [], None
    opt_state = None
    if cfg.resume:
        if state_path.is_file():
            st = torch.load(state_path, map_location="cpu", weights_only=False)
            net.load_state_dict(st["net"])
            if mlp is not None and st.get("mlp") is not None:
                mlp.load_state_dict(st["mlp"])
            opt_state, step, train_seconds, history = st["optimizer"], st["step"], st["train_seconds"], st["history"]
            resumed_from = str(state_path)
        elif compact_path.is_file():
            blob = load_compact_into(compact_path, net, mlp)
            step, train_seconds = blob["step"], blob["seconds"]
            history = blob["extra"].get("history", [])
            opt_state = ("compact", blob.get("optimizer"))
            resumed_from = str(compact_path)
        else:
            raise ValueError(f"--resume: neither {state_path} nor {compact_path} exists; start without --resume")
        log(f"resuming from {resumed_from} at step {step} ({train_seconds / 60:.1f} min of training done)")

    # --- pseudo-labels -------------------------------------------------------------------
    log(f"pseudo-labels ({cfg.pseudo}, confidence >= {cfg.min_confidence}) with {engine}")
    labels, stats = [], []
    for p in pairs:
        lab, st = pseudo_labels(engine, p, work, Path(cfg.bundle), source=cfg.pseudo, min_confidence=cfg.min_confidence,
                                agree_px=cfg.agree_px, threads=cfg.engine_threads, log=log)
        labels.append(lab)
        stats.append(st)
        log(f"  {p.name}: range [{p.disp_min}, {p.disp_max}], coverage {100 * st.coverage:.1f} %"
            + (f" (census density {100 * st.census_density:.1f} %)" if st.census_density is not None else "")
            + (f", census/model agreement {100 * st.agreement:.1f} %" if st.agreement is not None else "")
            + f", labels p5/50/95 {st.label_p5_p50_p95}")
    if all(s.coverage == 0 for s in stats):
        raise RuntimeError("no pixel passed the pseudo-label filters on any pair: lower --min-confidence or check --disp-range")
    reals = _real_pairs(pairs, labels)
    big = max(float(np.nanpercentile(lab, 99.5)) if np.isfinite(lab).any() else 0.0 for lab in labels)
    right_extra = max(64, int(math.ceil((big + cfg.u_max) / 8.0)) * 8)
    real_aug = AugmentConfig(vflip=0.5, hflip=0.0)
    synth_ds = None
    if cfg.use_synth:
        from ..data.dataset import CropDataset

        synth_ds = CropDataset([{"path": cfg.synth, "format": "synth"}], crop_height=cfg.crop, crop_width=cfg.crop,
                               right_extra=128, samples_per_epoch=1 << 30, seed=cfg.seed + 7,
                               augment=AugmentConfig(vflip=0.5, hflip=0.5), cache_pairs=24)
        log(f"synthetic data: {cfg.synth} ({len(synth_ds.loaders)} pairs), {100 * cfg.effective_synth_ratio:.0f} % of the steps, weight {cfg.synth_weight}")

    # --- optimisation --------------------------------------------------------------------
    loss_cfg = LossConfig(bce_weight=cfg.bce_weight if mlp is not None else 0.0, hinge_weight=cfg.hinge_weight, margin=cfg.margin)
    params = list(net.parameters()) + (list(mlp.parameters()) if mlp is not None else [])
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if isinstance(opt_state, tuple):
        if restore_optimizer(opt, opt_state[1]):
            log("  optimizer moments restored from the compact checkpoint")
    elif opt_state is not None:
        opt.load_state_dict(opt_state)
    setup_seconds = time.time() - t_start
    budget = cfg.minutes * 60.0 - cfg.export_reserve_min * 60.0 - setup_seconds if cfg.minutes > 0 else float("inf")
    budget_total = train_seconds + max(0.0, budget)
    log(f"training: {'%d steps' % cfg.steps if cfg.steps else 'no step limit'}, "
        f"{'%.1f min of training' % (budget_total / 60) if math.isfinite(budget_total) else 'no time limit'}"
        f" (setup took {setup_seconds:.0f} s), crops {cfg.crop}x{cfg.crop}, real right_extra {right_extra}, batch {cfg.batch_size}, lr {cfg.lr}")

    def save_state(final: bool = False) -> None:
        blob = {"net": net.state_dict(), "mlp": mlp.state_dict() if mlp is not None else None, "optimizer": opt.state_dict(),
                "step": step, "train_seconds": train_seconds, "history": history, "config": asdict(cfg)}
        tmp = state_path.with_name("state.pt.partial")
        torch.save(blob, tmp)
        tmp.replace(state_path)
        save_compact(compact_path, net=net, mlp=mlp, arch=arch, bn_folded=True, step=step, seconds=train_seconds,
                     optimizer=opt if cfg.checkpoint_optimizer else None,
                     extra={"history": history, "source_bundle": str(cfg.bundle), "adapt_config": asdict(cfg), "final": final})

    def on_term(signum, frame):  # SIGTERM behaves like Ctrl-C: save, then stop
        raise _Interrupt()

    old = signal.signal(signal.SIGTERM, on_term)
    acc: dict[str, list[float]] = {}
    last_save = time.time()
    t_loop = time.time()
    seconds_at_loop = train_seconds
    step_at_loop = step
    interrupted = False
    try:
        while True:
            train_seconds = seconds_at_loop + (time.time() - t_loop)
            if cfg.steps and step >= cfg.steps:
                break
            if train_seconds >= budget_total:
                break
            progress = max(step / cfg.steps if cfg.steps else 0.0,
                           train_seconds / budget_total if math.isfinite(budget_total) and budget_total > 0 else 0.0)
            for g in opt.param_groups:
                g["lr"] = cfg.lr * _lr_factor(step, progress, cfg.warmup_steps)
            is_synth = synth_ds is not None and math.floor((step + 1) * cfg.effective_synth_ratio) > math.floor(step * cfg.effective_synth_ratio)
            if is_synth:
                batch = torch.utils.data.default_collate([synth_ds[step * cfg.batch_size + j] for j in range(cfg.batch_size)])
                u_min, weight, kind = cfg.u_min, cfg.synth_weight, "synth"
            else:
                rng = np.random.default_rng([cfg.seed, step])
                batch = real_batch(reals, rng, batch=cfg.batch_size, crop=cfg.crop, right_extra=right_extra,
                                   min_coverage=cfg.min_crop_coverage, augment=real_aug)
                u_min, weight, kind = cfg.u_min_real, 1.0, "real"
            net.train()
            freeze_batchnorm(net)
            if mlp is not None:
                mlp.train()
            res = contrastive_step(net, mlp, batch, loss_cfg, k=cfg.k, u_min=u_min, u_max=cfg.u_max)
            opt.zero_grad(set_to_none=True)
            (weight * res["loss"]).backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            step += 1
            for key in ("loss", "hinge", "bce", "cos_rank_acc", "mlp_rank_acc"):
                if key in res:
                    acc.setdefault(f"{kind}_{key}", []).append(float(res[key].detach()))
            if step % cfg.progress_every == 0:
                train_seconds = seconds_at_loop + (time.time() - t_loop)
                means = {k: round(float(np.mean(v)), 4) for k, v in acc.items()}
                history.append({"step": step, "minutes": round(train_seconds / 60, 2), "lr": opt.param_groups[0]["lr"], **means})
                acc = {}
                rate = (time.time() - t_loop) / max(1, step - step_at_loop)
                left = budget_total - train_seconds
                log(f"step {step}{'/' + str(cfg.steps) if cfg.steps else ''} | {train_seconds / 60:.1f} min | "
                    + " | ".join(f"{k} {v:.3f}" for k, v in means.items() if k.endswith(("_loss", "rank_acc")))
                    + f" | lr {opt.param_groups[0]['lr']:.1e} | {rate:.1f} s/step"
                    + (f" | {left / 60:.0f} min left" if math.isfinite(left) else ""))
                sys.stdout.flush()
            if time.time() - last_save >= cfg.save_every_min * 60:
                save_state()
                last_save = time.time()
    except (KeyboardInterrupt, _Interrupt):
        interrupted = True
    finally:
        signal.signal(signal.SIGTERM, old)
    train_seconds = seconds_at_loop + (time.time() - t_loop)
    save_state(final=not interrupted)
    if interrupted:
        log(f"interrupted at step {step}: state saved to {state_path} and {compact_path}; continue with the same command and --resume")
        raise KeyboardInterrupt
    log(f"training done: {step} steps, {train_seconds / 60:.1f} min")

    # --- export ----------------------------------------------------------------------------
    from .card import write_adapted_bundle

    summary = write_adapted_bundle(
        cfg, net=net, mlp=mlp, pairs=pairs, reals=reals, stats=stats, history=history, steps=step, train_seconds=train_seconds,
        wall_seconds=time.time() - t_start, hardware=_hardware(), engine=engine, right_extra=right_extra,
        resumed_from=resumed_from, log=log,
    )
    return summary


__all__ = ["AdaptConfig", "LabelStats", "real_batch", "run_adapt", "stats_dict"]
