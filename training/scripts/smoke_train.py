#!/usr/bin/env python
"""CPU smoke training of MS-AFF + MLP on freshly generated fake synthetic data.

    python training/scripts/smoke_train.py [WORKDIR] [--epochs 4]

Writes WORKDIR/data (fake `deepsim synth` layout), trains with configs/smoke_cpu.yaml into
WORKDIR/run and prints the mean training loss of the first and last logged steps (it must
decrease). Middlebury / motorcycle data are never used for training.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from deepsim_train.cli import main as cli_main
from deepsim_train.data.fake import make_fake_synth

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("workdir", nargs="?", default="runs/smoke-workdir", type=Path)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--pairs", type=int, default=8)
    a = ap.parse_args()
    data = make_fake_synth(a.workdir / "data", num_pairs=a.pairs, height=96, width=128, seed=7)
    run = a.workdir / "run"
    cli_main(["train", "--config", str(HERE.parent / "configs" / "smoke_cpu.yaml"), "--output-dir", str(run),
              "--epochs", str(a.epochs), "--set", f"data.train=[{{path: {data}}}]", "--no-progress"])
    rows = list(csv.DictReader(open(sorted((run / "logs").glob("version_*"))[-1] / "metrics.csv")))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    k = max(1, len(losses) // 5)
    first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
    print(f"logged steps: {len(losses)}; mean loss first {k}: {first:.4f}; last {k}: {last:.4f}")
    return 0 if last < first else 1


if __name__ == "__main__":
    sys.exit(main())
