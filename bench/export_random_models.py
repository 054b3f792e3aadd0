#!/usr/bin/env python3
"""Export randomly initialised, full-size bundles of every architecture (for speed benchmarks only:
their similarities are meaningless). Usage: python bench/export_random_models.py OUT_DIR"""
import sys
from pathlib import Path

import torch

from deepsim_train.export import export_bundle
from deepsim_train.models.mlp import build_mlp
from deepsim_train.models.registry import build_feature_extractor

out = Path(sys.argv[1])
torch.manual_seed(0)
for arch in ["msaff", "unet32", "unet_attention"]:
    net = build_feature_extractor(arch)
    mlp = build_mlp(net.embedding_dim)
    export_bundle(net, mlp, out / arch, name=f"{arch} (random weights, benchmark only)")
    print(arch, "->", out / arch)
