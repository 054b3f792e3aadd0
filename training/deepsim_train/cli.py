"""``deepsim-train``: train, evaluate, export.

    deepsim-train train --config configs/msaff.yaml [--resume [CKPT]] [--devices 2 --strategy ddp]
    deepsim-train evaluate --checkpoint runs/msaff/checkpoints/last.ckpt --data /work/shared/data/motorcycle --out eval/
    deepsim-train evaluate --bundle models/msaff --data ... --out ...
    deepsim-train export --checkpoint runs/msaff/checkpoints/last.ckpt --out models/msaff [--fp16] [--eval-data DIR]
    deepsim-train adapt --bundle models/msaff --pairs DIR [DIR ...] --out models/msaff-adapted --synth SYNTH [--minutes 55]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml


def _parse_set(items: list[str]) -> dict:
    out = {}
    for it in items or []:
        if "=" not in it:
            raise SystemExit(f"--set expects key=value, got {it!r}")
        k, v = it.split("=", 1)
        out[k] = yaml.safe_load(v)
    return out


def cmd_train(a: argparse.Namespace) -> int:
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from .config import load_config, save_config
    from .lightning_module import DeepSimModule, StereoDataModule

    overrides = _parse_set(a.set)
    for flag, key in (("devices", "trainer.devices"), ("strategy", "trainer.strategy"), ("accelerator", "trainer.accelerator"),
                      ("num_nodes", "trainer.num_nodes"), ("epochs", "optim.epochs"), ("max_steps", "optim.max_steps"),
                      ("seed", "seed"), ("output_dir", "output_dir"), ("batch_size", "optim.batch_size"), ("lr", "optim.lr"),
                      ("precision", "optim.precision")):
        v = getattr(a, flag, None)
        if v is not None:
            overrides[key] = v
    init = None
    if a.init_from:
        init = Path(a.init_from)
        if init.is_dir():  # a bundle: BatchNorm folded, so it stays frozen
            overrides["model.freeze_bn"] = True
        elif not init.is_file():
            raise SystemExit(f"--init-from {init}: neither a bundle folder nor a compact checkpoint file")
    cfg = load_config(a.config, overrides)  # checked entirely before any computation
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True)
    t = cfg.trainer
    devices = t.devices
    if isinstance(devices, str) and devices.isdigit():
        devices = int(devices)
    ckpt_dir = out / "checkpoints"
    callbacks = [
        ModelCheckpoint(
            dirpath=ckpt_dir,
            filename="step{step:07d}",
            auto_insert_metric_name=False,
            save_last=True,
            save_top_k=-1 if t.checkpoint_every_n_steps else 1,
            every_n_train_steps=t.checkpoint_every_n_steps or None,
        )
    ]
    trainer = L.Trainer(
        accelerator=t.accelerator,
        devices=devices,
        strategy=t.strategy,
        num_nodes=t.num_nodes,
        precision=str(cfg.optim.precision),
        max_epochs=cfg.optim.epochs if cfg.optim.epochs > 0 else -1,
        max_steps=cfg.optim.max_steps,
        gradient_clip_val=cfg.optim.grad_clip or None,
        log_every_n_steps=t.log_every_n_steps,
        check_val_every_n_epoch=t.val_every_n_epochs,
        limit_val_batches=1.0 if cfg.data.val else 0,
        default_root_dir=str(out),
        logger=CSVLogger(str(out), name="logs"),
        callbacks=callbacks,
        enable_progress_bar=not a.no_progress,
        enable_model_summary=True,
        deterministic=False,
    )
    ckpt_path = None
    if a.resume is not None:
        ckpt_path = a.resume if a.resume != "last" else str(ckpt_dir / "last.ckpt")
        if not Path(ckpt_path).exists():
            if a.resume == "last":
                print(f"--resume: no {ckpt_path} yet, starting from scratch", file=sys.stderr)
                ckpt_path = None
            else:
                raise SystemExit(f"--resume: checkpoint {ckpt_path} does not exist")
    if trainer.is_global_zero:
        save_config(cfg, out / "config.resolved.yaml")
    model = DeepSimModule(cfg.to_dict())
    if init is not None and ckpt_path is None:
        _init_weights(model, init)
    dm = StereoDataModule(cfg)
    t0 = time.time()
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
    elapsed = time.time() - t0
    # The periodic checkpoint only fires on multiples of checkpoint_every_n_steps: save the
    # final state as last.ckpt too, so that a run whose max_steps is off that grid loses nothing.
    trainer.save_checkpoint(str(ckpt_dir / "last.ckpt"))
    if trainer.is_global_zero:
        from .compact import save_compact

        prev_seconds = 0.0
        if ckpt_path and (out / "train_summary.json").exists():
            prev_seconds = float(json.loads((out / "train_summary.json").read_text()).get("seconds", 0.0))
        for dest in [out / "compact.pt"] + ([Path(a.compact_out)] if a.compact_out else []):
            save_compact(dest, net=model.net, mlp=model.mlp, arch=cfg.model.arch, options=cfg.model.options,
                         bn_folded=cfg.model.freeze_bn, step=trainer.global_step, seconds=elapsed + prev_seconds,
                         optimizer=trainer.optimizers[0] if a.compact_optimizer else None,
                         extra={"config": cfg.to_dict(), "init_from": str(init) if init else None})
            print(f"compact checkpoint: {dest} ({dest.stat().st_size / 1e6:.1f} MB)")
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        prev = {}
        summary_path = out / "train_summary.json"
        if ckpt_path and summary_path.exists():
            prev = json.loads(summary_path.read_text())
        summary = {
            "arch": cfg.model.arch,
            "global_step": trainer.global_step,
            "epochs_completed": trainer.current_epoch,
            "seconds": elapsed + float(prev.get("seconds", 0.0)),
            "world_size": trainer.world_size,
            "final_metrics": metrics,
            "last_checkpoint": str(ckpt_dir / "last.ckpt"),
            "config": str(out / "config.resolved.yaml"),
        }
        summary_path.write_text(json.dumps(summary, indent=1))
        print(json.dumps({k: summary[k] for k in ("global_step", "epochs_completed", "seconds", "world_size")}))
    return 0


def _init_weights(model, init: Path) -> None:
    """Start ``model`` (a DeepSimModule) from a bundle folder or a compact checkpoint."""
    if init.is_dir():
        from .bundle_import import load_bundle

        net, mlp, rep = load_bundle(init, arch=model.cfg.model.arch, options=model.cfg.model.options, with_mlp=model.mlp is not None)
        model.net.load_state_dict(net.state_dict())
        if model.mlp is not None:
            if mlp is None:
                raise SystemExit(f"--init-from {init}: the bundle has no mlp.onnx but the config trains an MLP (loss.bce_weight > 0)")
            model.mlp.load_state_dict(mlp.state_dict())
        print(f"initialised from bundle {init}: {rep.conv_modules} conv modules, {rep.folded_batchnorms} BatchNorms frozen")
    else:
        from .compact import load_compact_into

        blob = load_compact_into(init, model.net, model.mlp)
        print(f"initialised from compact checkpoint {init} (step {blob['step']}, {blob['seconds'] / 3600:.2f} h)")


def _load_checkpoint(path: str):
    from .lightning_module import DeepSimModule

    module = DeepSimModule.load_from_checkpoint(path, map_location="cpu")
    return module.eval()


def cmd_evaluate(a: argparse.Namespace) -> int:
    from .data.pairs import load_pairs
    from .eval import OnnxSimilarity, TorchSimilarity, evaluate, format_table, ncc_similarity

    sims = []
    if a.checkpoint:
        m = _load_checkpoint(a.checkpoint)
        name = m.cfg.model.arch
        if m.mlp is not None:
            sims.append(TorchSimilarity(m.net, m.mlp, name=f"{name}+mlp"))
        sims.append(TorchSimilarity(m.net, None, name=f"{name}+cosine"))
    if a.bundle:
        b = Path(a.bundle)
        if (b / "mlp.onnx").exists():
            sims.append(OnnxSimilarity(b, use_mlp=True, name=f"{b.name}+mlp(onnx)"))
        sims.append(OnnxSimilarity(b, use_mlp=False, name=f"{b.name}+cosine(onnx)"))
    if not a.no_ncc:
        sims.append(ncc_similarity(a.ncc_window))
    pairs = []
    for d in a.data:
        pairs += load_pairs(d, format=a.format, purpose="eval")
    report = evaluate(sims, pairs, out_dir=a.out, seed=a.seed, dataset_name=",".join(a.data))
    print(format_table(report))
    if a.out:
        print(f"wrote {Path(a.out) / 'jp.json'} and plots")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from .data.pairs import load_pairs
    from .eval import TorchSimilarity, evaluate
    from .export import export_bundle

    m = _load_checkpoint(a.checkpoint)
    cfg = m.cfg
    run_dir = Path(a.checkpoint).resolve().parent.parent
    summary = {}
    if (run_dir / "train_summary.json").exists():
        summary = json.loads((run_dir / "train_summary.json").read_text())
    import torch

    ck = torch.load(a.checkpoint, map_location="cpu", weights_only=False)
    card = {
        "training_data": ", ".join(str(s.get("path")) for s in cfg.data.train),
        "steps": ck.get("global_step", summary.get("global_step", "n/a")),
        "epochs": summary.get("epochs_completed", ck.get("epoch", "n/a")),
        "train_time": f"{summary['seconds'] / 3600:.2f} h on {summary.get('world_size', 1)} device(s)" if "seconds" in summary else "n/a",
        "command": f"deepsim-train train --config {run_dir / 'config.resolved.yaml'} && deepsim-train export --checkpoint {a.checkpoint} --out {a.out}",
    }
    real = {}
    if a.eval_data:
        pairs = load_pairs(a.eval_data, purpose="eval")
        rows = evaluate([TorchSimilarity(m.net, m.mlp, name="mlp")] if m.mlp is not None else [], pairs)["rows"]
        rows += evaluate([TorchSimilarity(m.net, None, name="cosine")], pairs)["rows"]
        card["jp"] = "; ".join(f"{r['name']} {r['jp_percent']:.1f} % (u in {r['u_range']}) on {Path(a.eval_data).name}" for r in rows)
        real = {pairs[0].name: pairs[0].left}
    rep = export_bundle(m.net, m.mlp if not a.no_mlp else None, a.out, fp16=a.fp16, real_images=real, card=card)
    for c in rep["parity"]:
        print(f"{c['what']}: max|diff| {c['max_abs_diff']:.2e} (tol {c['tolerance']:.1e}) {'ok' if c['ok'] else 'FAILED'}")
    print(f"bundle written to {a.out}")
    return 0


def cmd_stamp_margin(a: argparse.Namespace) -> int:
    from .export import MARGIN_KEY, stamp_exact_margin

    for bundle in a.bundle:
        margin, reached = stamp_exact_margin(bundle)
        trail = ", ".join(f"{m} px: {c:.6f}" for m, c in reached.items())
        if margin is None:
            print(f"{bundle}: no margin up to {max(reached, default=0)} px reaches cosine 0.99999 ({trail}); {MARGIN_KEY} removed")
        else:
            print(f"{bundle}: {MARGIN_KEY} = {margin} (min embedding cosine to whole-image features: {trail})")
    return 0


def cmd_adapt(a: argparse.Namespace) -> int:
    import dataclasses

    from .adapt import AdaptConfig, run_adapt

    fields = {f.name for f in dataclasses.fields(AdaptConfig)}
    cfg = AdaptConfig(**{k: v for k, v in vars(a).items() if k in fields and v is not None})
    try:
        run_adapt(cfg, log=lambda m: print(m, flush=True))
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"deepsim-train adapt: error: {e}", file=sys.stderr)
        return 2
    return 0


def cmd_quantize(a: argparse.Namespace) -> int:
    from .quantize import QuantizeConfig, run_quantize

    cfg = QuantizeConfig(bundle=a.bundle, synth=a.synth, pairs=a.pairs or [], val=a.val, crops=a.crops, crop=a.crop,
                         val_pairs=a.val_pairs, seed=a.seed)
    command = "deepsim-train quantize " + " ".join(sys.argv[2:]) if len(sys.argv) > 1 else "deepsim-train quantize"
    try:
        run_quantize(cfg, command=command, log=lambda m: print(m, flush=True))
    except (ValueError, FileNotFoundError) as e:
        print(f"deepsim-train quantize: error: {e}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="deepsim-train", description="deepsim training side: train, evaluate, export")
    sub = ap.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train a feature extractor (+ MLP) from a YAML config")
    t.add_argument("--config", required=True)
    t.add_argument("--resume", nargs="?", const="last", default=None, help="resume from CKPT (default: OUTPUT_DIR/checkpoints/last.ckpt)")
    t.add_argument("--devices", help="devices per node (int, list, or 'auto')")
    t.add_argument("--strategy", help="auto, ddp, ddp_spawn, fsdp, ...")
    t.add_argument("--accelerator", help="auto, cpu, gpu")
    t.add_argument("--num-nodes", dest="num_nodes", type=int)
    t.add_argument("--epochs", type=int)
    t.add_argument("--max-steps", dest="max_steps", type=int)
    t.add_argument("--batch-size", dest="batch_size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--precision")
    t.add_argument("--seed", type=int)
    t.add_argument("--output-dir", dest="output_dir")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any config key, e.g. --set data.crop_width=128")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--init-from", dest="init_from", metavar="BUNDLE_OR_PT",
                   help="start from a bundle folder (BatchNorm folded, kept frozen) or a compact checkpoint (.pt)")
    t.add_argument("--compact-out", dest="compact_out", metavar="PT",
                   help="also write the compact checkpoint (fp16 weights) here, e.g. training/checkpoints/NAME.pt to commit")
    t.add_argument("--compact-optimizer", dest="compact_optimizer", action="store_true",
                   help="store the AdamW moments (bfloat16) in the compact checkpoints too")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="JP / overlap / AUC on datasets with GT, plots and JSON")
    e.add_argument("--checkpoint")
    e.add_argument("--bundle", help="an exported bundle folder (run with onnxruntime)")
    e.add_argument("--data", action="append", required=True, help="dataset folder (synth, middlebury, motorcycle); repeatable")
    e.add_argument("--format", default="auto")
    e.add_argument("--out", help="output folder for jp.json and plots")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--ncc-window", type=int, default=7)
    e.add_argument("--no-ncc", action="store_true", help="skip the NCC baseline row")
    e.set_defaults(func=cmd_evaluate)

    x = sub.add_parser("export", help="checkpoint -> ONNX bundle (features.onnx, mlp.onnx, card.md)")
    x.add_argument("--checkpoint", required=True)
    x.add_argument("--out", required=True)
    x.add_argument("--fp16", action="store_true", help="store weights as float16 (checked)")
    x.add_argument("--no-mlp", action="store_true")
    x.add_argument("--eval-data", help="dataset for the card's JP and a real-image parity check")
    x.set_defaults(func=cmd_export)

    sm = sub.add_parser("stamp-margin", help="measure each bundle's exact feature-tile margin and write it into features.onnx's metadata "
                        "(the engine's default --feature-margin; weights untouched)")
    sm.add_argument("bundle", nargs="+", help="bundle folders")
    sm.set_defaults(func=cmd_stamp_margin)

    qz = sub.add_parser(
        "quantize",
        help="write the bundle's int8 feature extractor (features.int8.onnx, ONNX Runtime on CPUs) with a parity report",
        description="Static int8 quantisation (QDQ) of BUNDLE/features.onnx, calibrated on crops of training images "
        "(never validation pairs); writes BUNDLE/features.int8.onnx, BUNDLE/quantize.json and a card section with the "
        "embedding parity, the time of both and, with --val, JP of both.",
    )
    qz.add_argument("--bundle", required=True, help="bundle folder (its features.onnx is quantised; the file goes next to it)")
    qz.add_argument("--synth", help="synthetic training pairs for calibration (`deepsim synth --seed 1001 ...`)")
    qz.add_argument("--pairs", nargs="*", metavar="DIR", help="your own pair folders for calibration (left/right images)")
    qz.add_argument("--val", help="held-out synthetic pairs (seed 2002) for the JP parity report")
    qz.add_argument("--crops", type=int, default=16, help="calibration crops (default 16)")
    qz.add_argument("--crop", type=int, default=256, help="calibration crop size, px (default 256)")
    qz.add_argument("--val-pairs", dest="val_pairs", type=int, default=8, help="pairs of --val used (default 8)")
    qz.add_argument("--seed", type=int, default=0)
    qz.set_defaults(func=cmd_quantize)

    ad = sub.add_parser(
        "adapt",
        help="self-supervised adaptation of a bundle to unlabeled epipolar pairs (pseudo-labels + synthetic supervision)",
        description="Fine-tune a bundle on your own unlabeled pairs: the engine's confident, left-right consistent "
        "census + SGM matches are the labels; synthetic crops with exact GT keep the model from drifting. "
        "Writes a normal bundle (fp16 ONNX, card.md, adapt.json) and a compact checkpoint.pt to resume from.",
    )
    ad.add_argument("--bundle", required=True, help="source bundle folder (features.onnx + mlp.onnx), e.g. models/msaff")
    ad.add_argument("--pairs", nargs="+", required=True, metavar="DIR",
                    help="pair folders, each with left.EXT/right.EXT (or im0/im1, Epip1/Epip2); any number, one is fine")
    ad.add_argument("--out", required=True, help="output bundle folder (created); OUT/work holds cached engine runs and state")
    ad.add_argument("--synth", help="synthetic dataset of `deepsim synth --seed 1001 ... --right-disparity` (never seed 2002)")
    ad.add_argument("--steps", type=int, help="stop after N optimizer steps (default: the time budget decides)")
    ad.add_argument("--minutes", type=float, help="wall-clock budget of the whole run, default 55 (0: none; then give --steps)")
    ad.add_argument("--signals", nargs="+", choices=["pseudo", "synth"], help="losses to use (default: pseudo synth; `--signals synth` alone is the ablation control: synthetic steps only)")
    ad.add_argument("--pseudo", choices=["census", "model", "agree"],
                    help="pseudo-label source: census + SGM (default), the bundle itself, or their agreement within --agree-px")
    ad.add_argument("--min-confidence", dest="min_confidence", type=float,
                    help="keep pixels whose engine confidence (1 - best/second cost) is at least this (default 0.2)")
    ad.add_argument("--agree-px", dest="agree_px", type=float, help="census/model agreement tolerance for --pseudo agree (default 1)")
    ad.add_argument("--disp-range", dest="disp_range", metavar="MIN:MAX",
                    help="search range of every pair (default [-W/16, W/8] from the image width W)")
    ad.add_argument("--synth-ratio", dest="synth_ratio", type=float, help="share of steps on synthetic batches (default 0.5)")
    ad.add_argument("--synth-weight", dest="synth_weight", type=float, help="weight of the synthetic loss (default 1)")
    ad.add_argument("--lr", type=float, help="peak learning rate (default 2e-4)")
    ad.add_argument("--batch-size", dest="batch_size", type=int, help="crops per step (default 2)")
    ad.add_argument("--crop", type=int, help="left crop side in px, multiple of 8 (default 192)")
    ad.add_argument("--seed", type=int)
    ad.add_argument("--engine", help="deepsim binary (default: $DEEPSIM_BIN, PATH, or target/release/deepsim)")
    ad.add_argument("--engine-threads", dest="engine_threads", type=int, help="threads of the engine runs (default 1)")
    ad.add_argument("--resume", action="store_true", help="continue OUT's run (OUT/work/state.pt, else the committed OUT/checkpoint.pt)")
    ad.add_argument("--overwrite", action="store_true", help="start again in an OUT that holds an earlier run")
    ad.add_argument("--save-every-min", dest="save_every_min", type=float, help="state save interval (default 5 min)")
    ad.add_argument("--progress-every", dest="progress_every", type=int, help="print progress every N steps (default 10)")
    ad.add_argument("--checkpoint-optimizer", dest="checkpoint_optimizer", action="store_true", default=None,
                    help="also store the AdamW moments (bfloat16) in checkpoint.pt (~2x larger)")
    ad.set_defaults(func=cmd_adapt)
    return ap


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if a.cmd == "evaluate" and not (a.checkpoint or a.bundle or not a.no_ncc):
        raise SystemExit("evaluate: give --checkpoint and/or --bundle (or keep the NCC baseline)")
    return a.func(a)


if __name__ == "__main__":
    raise SystemExit(main())
