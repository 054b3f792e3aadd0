"""Resume from a bundle (ONNX -> PyTorch parity), compact checkpoints, and `deepsim-train adapt`
end to end on tiny fake data with a stand-in engine."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from deepsim_train.bundle_import import BundleImportError, freeze_batchnorm, load_bundle
from deepsim_train.compact import load_compact, restore_optimizer, save_compact
from deepsim_train.export import TOL_FP16, TOL_FP32, export_bundle
from deepsim_train.models import build_feature_extractor, build_mlp

REPO = Path(__file__).resolve().parents[2]


def _randomize_bn(net: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial BatchNorm statistics and affine parameters, so that folding matters."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)


def _ort(path: Path, feeds: dict) -> list[np.ndarray]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


@pytest.mark.parametrize("arch", ["msaff_tiny", "unet32_tiny", "unet_attention_tiny"])
@pytest.mark.parametrize("fp16", [False, True])
def test_bundle_import_matches_onnxruntime(arch, fp16, tmp_path):
    torch.manual_seed(0)
    net, mlp = build_feature_extractor(arch), build_mlp(8, hidden=32)
    _randomize_bn(net)
    export_bundle(net.eval(), mlp, tmp_path / "b", fp16=fp16)
    net2, mlp2, rep = load_bundle(tmp_path / "b", arch=arch)
    assert rep.folded_batchnorms == sum(isinstance(m, torch.nn.BatchNorm2d) for m in net2.modules()) > 0
    p = net.pad_multiple
    x = np.random.default_rng(3).random((1, 1, 4 * p, 6 * p), dtype=np.float32)
    with torch.no_grad():
        got = net2(torch.from_numpy(x)).numpy()
    (ref,) = _ort(tmp_path / "b" / "features.onnx", {"image": x})
    tol = (TOL_FP16 if fp16 else TOL_FP32)["features_rel"] * max(1.0, float(np.abs(ref).max()))
    assert float(np.abs(got - ref).max()) <= tol
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((50, 8), dtype=np.float32), rng.standard_normal((50, 8), dtype=np.float32)
    (sim,) = _ort(tmp_path / "b" / "mlp.onnx", {"left": a, "right": b})
    with torch.no_grad():
        sim2 = torch.sigmoid(mlp2(torch.from_numpy(a), torch.from_numpy(b))).numpy()
    assert float(np.abs(sim - sim2).max()) <= (TOL_FP16 if fp16 else TOL_FP32)["mlp_abs"]
    # BatchNorm stays frozen through train(): the imported model gives the same output in training mode
    net2.train()
    freeze_batchnorm(net2)
    with torch.no_grad():
        got_train = net2(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got_train, got, atol=1e-6)


def test_shipped_msaff_bundle_imports_with_parity():
    bundle = REPO / "models" / "msaff"
    if not (bundle / "features.onnx").exists():
        pytest.skip("models/msaff not present")
    net, mlp, rep = load_bundle(bundle)
    assert rep.arch == "msaff" and mlp is not None and rep.mlp_layers == 4
    x = np.random.default_rng(0).random((1, 1, 48, 64), dtype=np.float32)
    (ref,) = _ort(bundle / "features.onnx", {"image": x})
    with torch.no_grad():
        got = net(torch.from_numpy(x)).numpy()
    assert float(np.abs(got - ref).max()) <= TOL_FP16["features_rel"] * max(1.0, float(np.abs(ref).max()))


def test_import_into_wrong_architecture_is_a_clear_error(tmp_path):
    torch.manual_seed(0)
    export_bundle(build_feature_extractor("msaff_tiny").eval(), None, tmp_path / "b")
    with pytest.raises(BundleImportError, match="conv"):
        load_bundle(tmp_path / "b", arch="unet32_tiny")
    with pytest.raises(BundleImportError, match="features.onnx"):
        load_bundle(tmp_path / "nothing")


def test_compact_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    net, mlp = build_feature_extractor("msaff_tiny"), build_mlp(8, hidden=16)
    opt = torch.optim.AdamW(list(net.parameters()) + list(mlp.parameters()), lr=1e-3)
    x = torch.rand(1, 1, 16, 16)
    net(x).square().mean().backward()
    opt.step()
    path = save_compact(tmp_path / "c.pt", net=net, mlp=mlp, arch="msaff_tiny", step=7, seconds=12.5, optimizer=opt,
                        extra={"note": "x"})
    net2, mlp2, blob = load_compact(path)
    assert blob["step"] == 7 and blob["extra"]["note"] == "x" and blob["net"]["head.2.weight"].dtype == torch.float16
    for (k, v), v2 in zip(net.state_dict().items(), net2.state_dict().values()):
        if v.is_floating_point():
            assert torch.allclose(v, v2, atol=2e-3 * max(1.0, float(v.abs().max()))), k
    opt2 = torch.optim.AdamW(list(net2.parameters()) + list(mlp2.parameters()), lr=1e-3)
    assert restore_optimizer(opt2, blob["optimizer"])
    assert len(opt2.state) == len(opt.state)
    with pytest.raises(ValueError, match="compact"):
        torch.save({"x": 1}, tmp_path / "bad.pt")
        load_compact(tmp_path / "bad.pt")


# --- pair folders, labels -------------------------------------------------------------------
def _write_png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(arr).save(path)


def _textured_pair(folder: Path, *, h: int = 64, w: int = 96, d: int = 4, names=("left", "right"), seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    big = rng.integers(0, 256, size=(h, w + d), dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    _write_png(folder / f"{names[0]}.png", np.ascontiguousarray(big[:, d:]))  # left x <-> big x + d
    _write_png(folder / f"{names[1]}.png", np.ascontiguousarray(big[:, :w]))  # right x - d <-> big x


def test_find_pair_layouts_and_errors(tmp_path):
    from deepsim_train.adapt.pairs import default_range, find_pair, find_pairs, parse_range

    _textured_pair(tmp_path / "a")
    _textured_pair(tmp_path / "b", names=("im0", "im1"))
    p = find_pair(tmp_path / "a")
    assert p.left.name == "left.png" and (p.width, p.height) == (96, 64)
    assert find_pair(tmp_path / "b").right.name == "im1.png"
    lo, hi = default_range(1024)
    assert lo < 0 and hi >= 81 + 16  # covers the aerial pairs' 95th percentiles with margin
    assert find_pair(tmp_path / "a", disp_range=parse_range("-3:20")).disp_max == 20
    two = find_pairs([tmp_path / "a", tmp_path / "a"])
    assert [q.name for q in two] == ["a", "a-2"]
    (tmp_path / "c").mkdir()
    _write_png(tmp_path / "c" / "left.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="no image pair"):
        find_pair(tmp_path / "c")
    _textured_pair(tmp_path / "gt")
    np.save(tmp_path / "gt" / "gt.npy", np.zeros((64, 96), np.float32))
    with pytest.raises(ValueError, match="ground truth"):
        find_pair(tmp_path / "gt")
    with pytest.raises(ValueError, match="MIN:MAX"):
        parse_range("10")


def test_make_labels_sources():
    from deepsim_train.adapt.pseudo import make_labels

    census = np.array([[1.0, 2.0, np.nan, 4.0]], np.float32)
    conf = np.array([[0.5, 0.05, 0.9, 0.5]], np.float32)
    model = np.array([[1.5, 2.0, 3.0, 6.0]], np.float32)
    lab = make_labels(census, conf, None, source="census", min_confidence=0.1)
    np.testing.assert_array_equal(np.isfinite(lab), [[True, False, False, True]])
    lab = make_labels(census, conf, model, source="agree", min_confidence=0.1, agree_px=1.0)
    np.testing.assert_array_equal(np.isfinite(lab), [[True, False, False, False]])
    assert lab[0, 0] == 1.0  # the census value is the label
    with pytest.raises(ValueError, match="needs"):
        make_labels(census, conf, None, source="agree", min_confidence=0.1)


# --- end to end with a stand-in engine ----------------------------------------------------------
FAKE_ENGINE = r'''#!{python}
"""Stand-in for the deepsim binary: `match` writes a constant disparity (NaN on a border band) and
a confidence ramp; `check-model` checks that the bundle files exist."""
import sys, pathlib
import numpy as np, tifffile
from PIL import Image
a = sys.argv[1:]
if "check-model" in a:
    b = pathlib.Path(a[a.index("check-model") + 1])
    sys.exit(0 if (b / "features.onnx").exists() and (b / "mlp.onnx").exists() else 3)
out = pathlib.Path(a[a.index("--out") + 1]); out.mkdir(parents=True, exist_ok=True)
w, h = Image.open(a[a.index("--left") + 1]).size
d = np.full((h, w), {disp}, np.float32); d[:, :8] = np.nan
c = np.tile(np.linspace(0, 1, w, dtype=np.float32), (h, 1))
tifffile.imwrite(out / "disparity.tif", d); tifffile.imwrite(out / "confidence.tif", c)
'''


@pytest.fixture()
def tiny_setup(tmp_path, fake_synth):
    torch.manual_seed(0)
    bundle = tmp_path / "tiny"
    net = build_feature_extractor("msaff_tiny")
    # the importer builds by the bundle's arch metadata: register the tiny options under test
    export_bundle(net.eval(), build_mlp(8, hidden=16), bundle)
    eng = tmp_path / "fake-deepsim"
    eng.write_text(FAKE_ENGINE.replace("{python}", sys.executable).replace("{disp}", "4.0"))
    eng.chmod(eng.stat().st_mode | stat.S_IEXEC)
    _textured_pair(tmp_path / "pairs" / "p1", seed=1)
    _textured_pair(tmp_path / "pairs" / "p2", seed=2)
    return tmp_path, bundle, eng, fake_synth


def test_adapt_end_to_end_resume_and_card(tiny_setup, monkeypatch):
    from deepsim_train.adapt import AdaptConfig, run_adapt
    from deepsim_train.adapt import loop as adapt_loop
    from deepsim_train.adapt.card import set_evaluation

    tmp, bundle, eng, synth = tiny_setup
    real_load = adapt_loop.load_bundle
    monkeypatch.setattr(adapt_loop, "load_bundle", lambda b: real_load(b, arch="msaff_tiny"))
    out = tmp / "adapted"
    base = dict(bundle=str(bundle), pairs=[str(tmp / "pairs" / "p1"), str(tmp / "pairs" / "p2")], out=str(out), synth=str(synth),
                minutes=0, crop=32, batch_size=1, engine=str(eng), progress_every=1, min_confidence=0.2, disp_range="-4:12")
    logs: list[str] = []
    run_adapt(AdaptConfig(steps=2, **base), log=logs.append)
    card = (out / "card.md").read_text()
    summary = json.loads((out / "adapt.json").read_text())
    assert summary["steps"] == 2 and summary["synth_steps"] == 1
    cov = [s["coverage"] for s in summary["pseudo_labels"]]
    assert all(0.5 < c < 0.9 for c in cov)  # border band NaN and confidence ramp < 0.2 removed
    assert "coverage" in card and "p1" in card and "check-model`: passed" in card
    assert all(c["ok"] for c in summary["parity"])
    assert (out / "checkpoint.pt").stat().st_size < 200_000 and (out / "work" / ".gitignore").exists()
    # the exported bundle imports back
    net, mlp, _ = load_bundle(out, arch="msaff_tiny")
    # a second run into the same folder needs --resume or --overwrite
    with pytest.raises(ValueError, match="--resume"):
        run_adapt(AdaptConfig(steps=2, **base), log=logs.append)
    # resume from the committed compact checkpoint only (as on another machine)
    (out / "work" / "state.pt").unlink()
    run_adapt(AdaptConfig(steps=4, resume=True, **base), log=logs.append)
    summary = json.loads((out / "adapt.json").read_text())
    assert summary["steps"] == 4 and summary["resumed_from"].endswith("checkpoint.pt")
    set_evaluation(out / "card.md", "| a | b |")
    assert "| a | b |" in (out / "card.md").read_text()


def test_adapt_refuses_bad_inputs(tiny_setup):
    from deepsim_train.adapt import AdaptConfig, run_adapt

    tmp, bundle, eng, synth = tiny_setup
    base = dict(bundle=str(bundle), out=str(tmp / "o"), engine=str(eng), steps=1)
    with pytest.raises(ValueError, match="differ"):
        run_adapt(AdaptConfig(pairs=[str(tmp / "pairs" / "p1")], **{**base, "out": str(bundle)}))
    with pytest.raises(ValueError, match="--synth"):
        run_adapt(AdaptConfig(pairs=[str(tmp / "pairs" / "p1")], **base))
    with pytest.raises(ValueError, match="not a folder"):
        run_adapt(AdaptConfig(pairs=[str(tmp / "nope")], synth=str(synth), **base))
    with pytest.raises(FileNotFoundError, match="engine"):
        os.environ.pop("DEEPSIM_BIN", None)
        run_adapt(AdaptConfig(pairs=[str(tmp / "pairs" / "p1")], synth=str(synth), **{**base, "engine": str(tmp / "none")}))


def test_fold_batchnorm_keeps_the_function_and_fp16_rounding_gives_exact_parity(tmp_path):
    from deepsim_train.bundle_import import fold_batchnorm_, round_to_fp16_

    torch.manual_seed(0)
    net = build_feature_extractor("msaff_tiny")
    _randomize_bn(net, seed=5)
    net.eval()
    x = torch.rand(1, 1, 32, 48)
    with torch.no_grad():
        ref = net(x)
        assert fold_batchnorm_(net) == sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
        torch.testing.assert_close(net(x), ref, atol=1e-5, rtol=1e-5)
    round_to_fp16_(net)
    export_bundle(net, None, tmp_path / "b", fp16=True)
    (got,) = _ort(tmp_path / "b" / "features.onnx", {"image": x.numpy()})
    with torch.no_grad():
        mine = net(x).numpy()
    assert float(np.abs(got - mine).max()) <= 1e-4 * max(1.0, float(np.abs(mine).max()))  # the fp32 tolerance


def test_signals_choose_the_share_of_synthetic_steps():
    from deepsim_train.adapt import AdaptConfig

    msaff = str(Path(__file__).resolve().parents[2] / "models" / "msaff")
    base = dict(bundle=msaff, out="/tmp/x", pairs=["p"], synth="s", steps=1)
    assert AdaptConfig(**base).effective_synth_ratio == 0.5
    assert AdaptConfig(**base, signals=["pseudo"]).effective_synth_ratio == 0.0
    assert AdaptConfig(**base, signals=["pseudo"]).use_synth is False
    # the ablation control: synthetic steps only
    assert AdaptConfig(**base, signals=["synth"]).effective_synth_ratio == 1.0
    with pytest.raises(ValueError, match="--signals"):
        AdaptConfig(**base, signals=["photometric"]).validate()
    with pytest.raises(ValueError, match="--synth"):
        AdaptConfig(**{**base, "synth": None}, signals=["synth"]).validate()
