#!/usr/bin/env python3
"""Pandora MC-CNN fast (plugin default weights: Middlebury-trained, ONNX int8) + libSGM.

Thin wrapper: equivalent to `python run_pandora.py --matching-cost mc_cnn [args...]`.
Needs pandora-plugin-mccnn and mccnn (ONNX Runtime backend, no torch).
Note: MC-CNN was trained on Middlebury data, which may include this scene.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_pandora  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_pandora.main(["--matching-cost", "mc_cnn", *sys.argv[1:]]))
