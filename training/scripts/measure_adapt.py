"""Before/after measurements of an adapted bundle (or any bundles), with the engine binary.

    python training/scripts/measure_adapt.py --bundle models/msaff --bundle models/msaff-adapted \
        --out /tmp/measure [--synth-val DIR] [--card models/msaff-adapted/card.md]

* real validation pairs (`shared/data/motorcycle`, `shared/data/middlebury-v2/{teddy,venus,tsukuba}`;
  VALIDATION ONLY, never tuned on): `deepsim match` (census; each bundle with --head cosine and
  --head mlp) over the pair's suggested range (meta.json, 0..63), then `deepsim eval`:
  non-occluded bad-2 %, a missing prediction counting as bad;
* unlabeled aerial pairs (`shared/data/aerial-unlabeled/*`): density of the engine's output with
  its default filters, i.e. the share of pixels that pass the left-right check (1 px) and the
  small-region filter ("LR-consistent density"), over the adapt default range [-W/16, W/8];
* JP (cosine and MLP, the training protocol) of each bundle on a held-out synth-val set
  (`deepsim synth --count 10 --seed 2002 --size 512 --right-disparity`) and on the real validation pairs.

Prints one markdown table per block, writes OUT/measure.md and OUT/measure.json, and with --card
replaces the evaluation section of that card.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[1]))

from deepsim_train.adapt.pairs import default_range, find_pair  # noqa: E402
from deepsim_train.adapt.pseudo import find_engine, read_tif  # noqa: E402

VALIDATION = ["motorcycle", "middlebury-v2/teddy", "middlebury-v2/venus", "middlebury-v2/tsukuba"]


def _shared() -> Path:
    for p in (HERE.parents[2] / "shared", HERE.parents[3] / "shared", Path("/work/shared")):
        if (p / "data").is_dir():
            return p / "data"
    raise SystemExit("shared/data not found (expected next to the repository or at /work/shared)")


RUNTIME = "tract"


def match(engine: Path, left: Path, right: Path, out: Path, lo: int, hi: int, *, bundle: Path | None, head: str | None,
          threads: int) -> tuple[Path, float]:
    disp = out / "disparity.tif"
    stamp = out / "measure-done.json"
    args = [str(engine), "--threads", str(threads), "--quiet", "match", "--left", str(left), "--right", str(right), "--out", str(out),
            "--disp-min", str(lo), "--disp-max", str(hi)]
    if bundle is not None:
        # "cosine" / "mlp": the learned cost alone; "cosine+census" / "mlp+census": the engine's
        # default blend (--learned-weight 0.5 with census on the learned levels).
        net, blended = head.split("+")[0], head.endswith("+census")
        args += ["--model", str(bundle), "--head", net, "--runtime", RUNTIME, "--learned-weight", "0.5" if blended else "1"]
    if stamp.is_file() and json.loads(stamp.read_text())["args"] == args and disp.is_file():
        return disp, json.loads(stamp.read_text())["seconds"]
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"engine failed: {' '.join(args)}\n{r.stderr[-2000:]}")
    secs = round(time.time() - t0, 1)
    stamp.write_text(json.dumps({"args": args, "seconds": secs}))
    return disp, secs


def bad2(engine: Path, disp: Path, folder: Path) -> float:
    js = disp.parent / "eval.json"
    args = [str(engine), "eval", "--disparity", str(disp), "--gt", str(folder / "gt.npy"), "--mask", str(folder / "nonocc.npy"),
            "--json", str(js)]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"eval failed: {' '.join(args)}\n{r.stderr[-2000:]}")
    v = json.loads(js.read_text())["nonocc"]["bad_2"]
    return float(v)


def methods(bundles: list[Path], heads: list[str]) -> list[tuple[str, Path | None, str | None]]:
    out = [("census", None, None)]
    for b in bundles:
        for h in heads:
            if h.startswith("mlp") and not (b / "mlp.onnx").exists():
                continue
            out.append((f"{b.name} {h}", b, h))
    return out


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", action="append", required=True, help="bundle folder (repeatable; the first is 'before')")
    ap.add_argument("--out", required=True, help="work/output folder (engine runs are cached there)")
    ap.add_argument("--engine")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--heads", nargs="+", default=["cosine", "mlp"],
                    help="cosine, mlp (the learned cost alone), cosine+census, mlp+census (the engine's default blend)")
    ap.add_argument("--runtime", default="ort" if os.environ.get("ORT_DYLIB_PATH") else "tract",
                    help="engine runtime for the bundles (default: ort when ORT_DYLIB_PATH is set, else tract)")
    ap.add_argument("--synth-val", help="held-out synth-val folder (seed 2002) for JP")
    ap.add_argument("--skip", nargs="*", default=[], choices=["validation", "aerial", "jp"], help="blocks to skip")
    ap.add_argument("--aerial-heads", nargs="+", default=["cosine"],
                    help="heads for the aerial block (default: cosine; the MLP head takes ~15 min per 1024² pair on one CPU thread)")
    ap.add_argument("--card", help="card.md whose evaluation section is replaced with the tables")
    a = ap.parse_args(argv)
    global RUNTIME
    RUNTIME = a.runtime
    engine = find_engine(a.engine)
    data = _shared()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    bundles = [Path(b) for b in a.bundle]
    result: dict = {"bundles": [str(b) for b in bundles], "engine": str(engine), "threads": a.threads}
    md = []

    if "validation" not in a.skip:
        ms = methods(bundles, a.heads)
        rows, res = [], {}
        for name, b, h in ms:
            vals = []
            for v in VALIDATION:
                folder = data / v
                meta = json.loads((folder / "meta.json").read_text()) if (folder / "meta.json").exists() else {}
                lo, hi = 0, 63
                if isinstance(meta.get("search"), str) and ".." in meta["search"]:
                    lo, hi = (int(x) for x in meta["search"].split(".."))
                d, _ = match(engine, folder / "left.png", folder / "right.png", out / "val" / v.replace("/", "_") / name.replace(" ", "_"),
                             lo, hi, bundle=b, head=h, threads=a.threads)
                vals.append(bad2(engine, d, folder))
            res[name] = dict(zip(VALIDATION, vals))
            rows.append([name] + [f"{x:.2f}" for x in vals] + [f"{np.mean(vals):.2f}"])
            print(f"validation {name}: {vals}", flush=True)
        result["validation_bad2"] = res
        md.append("Non-occluded bad-2 % (invalid = bad), real validation pairs (never trained or tuned on), range 0..63:\n\n"
                  + table(["method"] + [v.split("/")[-1] for v in VALIDATION] + ["mean"], rows))

    if "aerial" not in a.skip:
        heads = a.aerial_heads
        ms = methods(bundles, heads)
        pairs = sorted(p for p in (data / "aerial-unlabeled").iterdir() if p.is_dir())
        rows, res = [], {}
        for name, b, h in ms:
            dens, secs = [], []
            for pdir in pairs:
                p = find_pair(pdir)
                lo, hi = default_range(p.width)
                d, s = match(engine, p.left, p.right, out / "aerial" / p.name / name.replace(" ", "_"), lo, hi, bundle=b, head=h,
                             threads=a.threads)
                dens.append(float(np.isfinite(read_tif(d)).mean()))
                secs.append(s)
            res[name] = {"density": dict(zip([p.name for p in pairs], dens)), "seconds": dict(zip([p.name for p in pairs], secs))}
            rows.append([name] + [f"{100 * x:.1f}" for x in dens] + [f"{100 * np.mean(dens):.1f}"])
            print(f"aerial {name}: {dens}", flush=True)
        result["aerial_density"] = res
        md.append("LR-consistent density % on the unlabeled aerial pairs (share of pixels passing the engine's left-right "
                  "check at 1 px and its small-region filter; range [-W/16, W/8]):\n\n"
                  + table(["method"] + [p.name for p in pairs] + ["mean"], rows))

    if "jp" not in a.skip:
        from deepsim_train.data.pairs import load_pairs
        from deepsim_train.eval import OnnxSimilarity, evaluate

        sets = []
        if a.synth_val:
            sets.append(("synth-val", load_pairs(a.synth_val, purpose="eval")))
        sets.append(("real validation (4 pairs)", [q for v in VALIDATION for q in load_pairs(data / v, purpose="eval")]))
        rows, res = [], {}
        cache_path = out / "jp-cache.json"
        cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
        for b in bundles:
            row = [b.name]
            stamp = f"{(b / 'features.onnx').stat().st_mtime_ns}"
            for set_name, ps in sets:
                for use_mlp in ([True, False] if (b / "mlp.onnx").exists() else [False]):
                    key = f"{b.resolve()}|{stamp}|{set_name}|{use_mlp}"
                    if key not in cache:
                        rep = evaluate([OnnxSimilarity(b, use_mlp=use_mlp, name=f"{b.name}+{'mlp' if use_mlp else 'cosine'}")], ps)
                        cache[key] = rep["rows"][0]["jp_percent"]
                        cache_path.write_text(json.dumps(cache, indent=1))
                    jp = cache[key]
                    res[f"{b.name} {set_name} {'mlp' if use_mlp else 'cosine'}"] = jp
                    row.append(f"{jp:.2f}")
            rows.append(row)
            print(f"JP {row}", flush=True)
        result["jp"] = res
        header = ["bundle"] + [f"{s} {h}" for s, _ in sets for h in ("MLP", "cosine")]
        md.append("JP % (training protocol: s+ at the true disparity, s- at d ± u, u ~ U[2, 40] MLP / U[2, 6] cosine):\n\n"
                  + table(header, rows))

    text = "\n\n".join(md) + f"\n\nMeasured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with `training/scripts/measure_adapt.py` " \
        f"(engine {engine.name}, runtime {a.runtime}, {a.threads} thread(s), SGM 8 directions, default engine settings).\n"
    (out / "measure.md").write_text(text)
    (out / "measure.json").write_text(json.dumps(result, indent=1))
    print(text)
    if a.card:
        from deepsim_train.adapt.card import set_evaluation

        set_evaluation(a.card, text)
        print(f"updated {a.card}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
