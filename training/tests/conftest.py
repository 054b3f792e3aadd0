from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

TRAINING = Path(__file__).resolve().parents[1]
MOTORCYCLE = TRAINING.parent / "shared" / "data" / "motorcycle"
if not MOTORCYCLE.exists():
    MOTORCYCLE = Path("/work/shared/data/motorcycle")

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def fake_synth(tmp_path_factory) -> Path:
    """A tiny dataset in the `deepsim synth` layout (4 pairs, 64 x 96, PNG images)."""
    from deepsim_train.data.fake import make_fake_synth

    return make_fake_synth(tmp_path_factory.mktemp("synth"), num_pairs=4, height=64, width=96, seed=1)


@pytest.fixture(scope="session")
def motorcycle() -> Path:
    if not (MOTORCYCLE / "gt.npy").exists():
        pytest.skip(f"shared motorcycle pair not found at {MOTORCYCLE}")
    return MOTORCYCLE


def script_path(name: str) -> Path:
    return TRAINING / "scripts" / name


sys.path.insert(0, str(TRAINING / "scripts"))
