"""Export the adapted model as a normal bundle and write its card and ``adapt.json``.

The bundle is exported into ``OUT/work/export`` first (fp16 weight storage, parity checked by
:func:`deepsim_train.export.export_bundle`), then its files are moved into ``OUT`` and the card
is written last, so an ``OUT`` with a ``card.md`` of this run is complete. The engine's
``deepsim check-model`` must pass on the result. The card's evaluation section is filled later by
``training/scripts/measure_adapt.py`` (between the ``<!-- evaluation -->`` markers).
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

EVAL_BEGIN = "<!-- evaluation -->"
EVAL_END = "<!-- /evaluation -->"


def _fmt_pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f} %"


def _curve(history: list[dict]) -> str:
    if not history:
        return "(no progress record: fewer steps than one progress interval)"
    keys = [k for k in ("real_loss", "real_mlp_rank_acc", "real_cos_rank_acc", "synth_loss", "synth_mlp_rank_acc", "synth_cos_rank_acc")
            if any(k in h for h in history)]
    head = "| step | min | " + " | ".join(keys) + " |\n|---|---|" + "---|" * len(keys) + "\n"
    rows = history if len(history) <= 12 else [history[i] for i in np.linspace(0, len(history) - 1, 12).round().astype(int)]
    body = "\n".join(f"| {h['step']} | {h['minutes']:.1f} | " + " | ".join(f"{h[k]:.3f}" if k in h else "–" for k in keys) + " |"
                     for h in rows)
    return head + body


def render_card(*, name: str, cfg, arch: str, params: tuple[int, int], pairs, stats, history, steps: int, train_seconds: float,
                wall_seconds: float, hardware: str, right_extra: int, parity: list[dict], check_model: str,
                resumed_from: str | None, n_synth_steps: int, rounding_cos: float | None = None) -> str:
    from .. import CONTRACT_VERSION

    pair_rows = "\n".join(
        f"| {p.name} | {p.width}x{p.height} | [{p.disp_min}, {p.disp_max}] | {_fmt_pct(s.census_density)} | {_fmt_pct(s.model_density)} | "
        f"{_fmt_pct(s.agreement)} | {100 * s.coverage:.1f} % | {s.label_p5_p50_p95} |"
        for p, s in zip(pairs, stats)
    )
    parity_txt = "\n".join(
        f"- {c['what']}: max |diff| {c['max_abs_diff']:.2e} (tolerance {c['tolerance']:.1e}"
        + (f", min cosine {c['min_cosine']:.6f}" if c.get("min_cosine_required") else "") + f") {'ok' if c['ok'] else 'FAILED'}"
        for c in parity
    )
    signals = [] if "pseudo" not in cfg.signals else [f"pseudo-labels ({cfg.pseudo}: engine census 7x7 + SGM 8 dir., left-right check 1 px"
               + (", and the source bundle's cosine + SGM" if cfg.pseudo in ("model", "agree") else "")
               + f"; kept: finite and confidence >= {cfg.min_confidence}"
               + (f" and census/model within {cfg.agree_px} px" if cfg.pseudo == "agree" else "") + ")"]
    if cfg.use_synth:
        signals.append(f"synthetic supervised crops ({cfg.synth}), {100 * cfg.effective_synth_ratio:.0f} % of the steps, loss weight {cfg.synth_weight}")
    cmd = (f"deepsim-train adapt --bundle {cfg.bundle} --pairs {' '.join(cfg.pairs)} --out {cfg.out}"
           + (f" --synth {cfg.synth}" if cfg.synth else "") + (f" --steps {cfg.steps}" if cfg.steps else "")
           + f" --minutes {cfg.minutes:g} --pseudo {cfg.pseudo} --min-confidence {cfg.min_confidence:g}"
           + f" --synth-ratio {cfg.synth_ratio:g} --synth-weight {cfg.synth_weight:g} --signals {' '.join(cfg.signals)}"
           + f" --lr {cfg.lr:g} --crop {cfg.crop} --batch-size {cfg.batch_size} --seed {cfg.seed}")
    return f"""# deepsim model: {name} (self-supervised adaptation of `{cfg.bundle}`)

Fine-tuned from the bundle `{cfg.bundle}` on {len(pairs)} unlabeled real pair(s) with
`deepsim-train adapt`: no ground truth of any real pair was used.

| | |
|---|---|
| architecture | {arch} feature extractor + decision MLP, weights loaded from the source bundle's ONNX files (BatchNorm folded, kept frozen as affine identities) |
| parameters | features {params[0]:,}, MLP {params[1]:,} |
| weights storage | {'float16 (cast to float32 in the graph)' if cfg.fp16 else 'float32'}{f' (BatchNorm folded and weights rounded to float16 before export: min per-pixel embedding cosine vs float32 {rounding_cos:.6f})' if rounding_cos is not None else ''}; contract {CONTRACT_VERSION}; compact checkpoint `checkpoint.pt` (float16) to resume from |
| adaptation data | {', '.join(f'`{p.folder}`' for p in pairs)} |
| signals | {'; '.join(signals)} |
| loss | training losses: MLP BCE (weight {cfg.bce_weight}) + cosine hinge (margin {cfg.margin}, weight {cfg.hinge_weight}); hard negatives: hardest of K = {cfg.k}, u in [{cfg.u_min_real}, {cfg.u_max}] px (real) / [{cfg.u_min}, {cfg.u_max}] px (synthetic) |
| crops | {cfg.batch_size} x {cfg.crop}x{cfg.crop} left crops per step against right crops {right_extra} px wider (real; 128 synthetic); real crops redrawn below {100 * cfg.min_crop_coverage:.0f} % label coverage; vertical flips and photometric jitter |
| optimiser | AdamW lr {cfg.lr:g} (warm-up {cfg.warmup_steps} steps, cosine decay to 5 % over the budget), weight decay {cfg.weight_decay:g}, grad-norm clip 5 |
| steps | **{steps}** ({steps - n_synth_steps} real, {n_synth_steps} synthetic){'; resumed from ' + resumed_from if resumed_from else ''} |
| wall time | training {train_seconds / 60:.1f} min; whole command (pseudo-labels, training, export) {wall_seconds / 60:.1f} min this invocation |
| hardware | {hardware} |
| engine check | `deepsim check-model`: {check_model} |
| exported | {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} |

## Pseudo-labels per pair

Census density = share of pixels with a census + SGM value after the left-right check;
coverage = share of pixels kept as labels (confidence >= {cfg.min_confidence}{', agreement' if cfg.pseudo == 'agree' else ''}).

| pair | size | search range | census density | model density | census/model within {cfg.agree_px:g} px | coverage | labels p5/50/95 (px) |
|---|---|---|---|---|---|---|---|
{pair_rows}

## Training curve (means over each progress interval)

{_curve(history)}

## Evaluation

{EVAL_BEGIN}
Not measured yet: `python training/scripts/measure_adapt.py --bundle {cfg.bundle} --bundle {cfg.out} --out DIR --card {cfg.out}/card.md` fills this section.
{EVAL_END}

## Parity (PyTorch vs onnxruntime)

{parity_txt}

## Reproduce

```
{cmd}
```

Disparity convention: left pixel (x, y) matches right pixel (x - d, y).
Cost for the engine: 1 - similarity (MLP) or (1 - cos) / 2 (cosine).
"""


def write_adapted_bundle(cfg, *, net, mlp, pairs, reals, stats, history, steps, train_seconds, wall_seconds, hardware, engine,
                         right_extra, resumed_from, log=print) -> dict:
    from ..export import export_bundle
    from ..models import count_parameters

    out = Path(cfg.out)
    tmp = out / "work" / "export"
    net.eval()
    if mlp is not None:
        mlp.eval()
    if cfg.fp16:
        # The bundle stores float16 weights: fold the (frozen) BatchNorms into their convolutions and
        # round to float16 first, so that the parity check compares the exported graph with exactly
        # the weights it stores (the card reports how far that rounding moved the embeddings).
        from ..bundle_import import fold_batchnorm_, round_to_fp16_

        fold_batchnorm_(net)
        probe = torch.from_numpy(np.ascontiguousarray(reals[0].left[:256, :256], dtype=np.float32))[None, None]
        with torch.no_grad():
            before = net(probe)
            round_to_fp16_(net)
            if mlp is not None:
                round_to_fp16_(mlp)
            after = net(probe)
        rounding_cos = float(torch.nn.functional.cosine_similarity(before, after, dim=1).min())
        log(f"weights rounded to float16: min per-pixel cosine of the embeddings before/after {rounding_cos:.6f}")
    else:
        rounding_cos = None
    left = reals[0].left
    h, w = left.shape
    s = min(512, h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    rep = export_bundle(net, mlp, tmp, fp16=cfg.fp16, real_images={reals[0].name: left[y0:y0 + s, x0:x0 + s]})
    for f in ("features.onnx", "mlp.onnx", "export.json"):
        if (tmp / f).exists():
            (tmp / f).replace(out / f)
    r = subprocess.run([str(engine), "check-model", str(out)], capture_output=True, text=True)
    check = "passed" if r.returncode == 0 else f"FAILED (rc {r.returncode})"
    log(f"deepsim check-model {out}: {check}\n{(r.stdout + r.stderr).strip()[-1500:]}")
    n_synth = sum(1 for i in range(steps) if cfg.use_synth and int((i + 1) * cfg.effective_synth_ratio) > int(i * cfg.effective_synth_ratio))
    summary = {
        "source_bundle": str(cfg.bundle),
        "out": str(out),
        "config": asdict(cfg),
        "pairs": [{"name": p.name, "folder": str(p.folder), "left": str(p.left), "right": str(p.right),
                   "size": [p.width, p.height], "disp_range": [p.disp_min, p.disp_max]} for p in pairs],
        "pseudo_labels": [asdict(s) for s in stats],
        "steps": steps,
        "synth_steps": n_synth,
        "train_seconds": round(train_seconds, 1),
        "wall_seconds_this_invocation": round(wall_seconds, 1),
        "hardware": hardware,
        "right_extra_real": right_extra,
        "history": history,
        "parity": rep["parity"],
        "check_model": {"rc": r.returncode, "output": (r.stdout + r.stderr)[-4000:]},
        "resumed_from": resumed_from,
        "fp16_rounding_min_cosine": rounding_cos,
    }
    (out / "adapt.json").write_text(json.dumps(summary, indent=1))
    card = render_card(
        name=out.name, cfg=cfg, arch=getattr(net, "arch", "?"),
        params=(count_parameters(net, trainable_only=False), count_parameters(mlp) if mlp is not None else 0),
        pairs=pairs, stats=stats, history=history, steps=steps, train_seconds=train_seconds, wall_seconds=wall_seconds,
        hardware=hardware, right_extra=right_extra, parity=rep["parity"], check_model=check, resumed_from=resumed_from,
        n_synth_steps=n_synth, rounding_cos=rounding_cos,
    )
    (out / "card.md").write_text(card)
    if r.returncode != 0:
        raise RuntimeError(f"deepsim check-model failed on {out}; see {out / 'adapt.json'}")
    log(f"bundle written to {out} (card.md, adapt.json, checkpoint.pt)")
    return summary


def set_evaluation(card_path: str | Path, text: str) -> None:
    """Replace the card's evaluation section (between the markers) with ``text``."""
    p = Path(card_path)
    card = p.read_text()
    if EVAL_BEGIN not in card or EVAL_END not in card:
        card = card.rstrip() + f"\n\n## Evaluation\n\n{EVAL_BEGIN}\n{EVAL_END}\n"
    a, rest = card.split(EVAL_BEGIN, 1)
    _, b = rest.split(EVAL_END, 1)
    p.write_text(f"{a}{EVAL_BEGIN}\n{text.strip()}\n{EVAL_END}{b}")
