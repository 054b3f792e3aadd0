"""ONNX export under the contract: names, shapes, metadata, parity with onnxruntime."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from deepsim_train.export import export_bundle, read_metadata
from deepsim_train.models import build_feature_extractor, build_mlp

CONTRACT_KEYS = {"deepsim.contract", "deepsim.role", "deepsim.arch", "deepsim.embedding_dim", "deepsim.pad_multiple", "deepsim.normalization"}


def _io(path):
    m = onnx.load(str(path))
    dims = lambda vi: [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]  # noqa: E731
    return m, {i.name: dims(i) for i in m.graph.input}, {o.name: dims(o) for o in m.graph.output}


@pytest.mark.parametrize("arch", ["msaff_tiny", "unet32_tiny", "unet_attention_tiny", "tiny_conv"])
def test_bundle_contract_and_parity(arch, tmp_path, motorcycle):
    from deepsim_train.data import read_motorcycle

    torch.manual_seed(0)
    net, mlp = build_feature_extractor(arch), build_mlp(8, hidden=32)
    real = read_motorcycle(motorcycle).left[100:164, 200:300]
    rep = export_bundle(net, mlp, tmp_path / "b", real_images={"motorcycle": real}, card={"jp": "n/a"})
    assert all(c["ok"] for c in rep["parity"])
    assert {c["what"].split(":")[1] for c in rep["parity"]} >= {"random", "motorcycle", "real"}
    m, ins, outs = _io(tmp_path / "b" / "features.onnx")
    assert m.opset_import[0].version >= 17
    assert ins == {"image": [1, 1, "height", "width"]} and outs == {"features": [1, 8, "height", "width"]}
    meta = read_metadata(tmp_path / "b" / "features.onnx")
    assert set(meta) >= CONTRACT_KEYS and meta["deepsim.role"] == "features" and meta["deepsim.contract"] == "1"
    assert meta["deepsim.pad_multiple"] == str(net.pad_multiple) and meta["deepsim.embedding_dim"] == "8"
    m, ins, outs = _io(tmp_path / "b" / "mlp.onnx")
    assert ins == {"left": ["M", 8], "right": ["M", 8]} and outs == {"similarity": ["M"]}
    assert read_metadata(tmp_path / "b" / "mlp.onnx")["deepsim.role"] == "mlp"
    card = (tmp_path / "b" / "card.md").read_text()
    assert "parameters" in card and "Parity" in card
    # dynamic sizes: another multiple of the pad size runs and matches
    sess = ort.InferenceSession(str(tmp_path / "b" / "features.onnx"), providers=["CPUExecutionProvider"])
    p = net.pad_multiple
    x = np.random.default_rng(1).random((1, 1, 3 * p, 7 * p), dtype=np.float32)
    with torch.no_grad():
        ref = net.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(sess.run(["features"], {"image": x})[0], ref, atol=1e-4)


def test_fp16_storage_halves_size_and_keeps_accuracy(tmp_path):
    torch.manual_seed(0)
    net, mlp = build_feature_extractor("msaff"), build_mlp(64)
    a = export_bundle(net, mlp, tmp_path / "fp32")
    b = export_bundle(net, mlp, tmp_path / "fp16", fp16=True)
    assert b["files"]["features.onnx"] < 0.6 * a["files"]["features.onnx"]
    assert all(c["ok"] for c in b["parity"])
    m = onnx.load(str(tmp_path / "fp16" / "features.onnx"))
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert m.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_patch_model_exports(tmp_path):
    net = build_feature_extractor("patch3")
    rep = export_bundle(net, None, tmp_path / "p")
    assert not (tmp_path / "p" / "mlp.onnx").exists()
    meta = read_metadata(tmp_path / "p" / "features.onnx")
    assert meta["deepsim.pad_multiple"] == "1" and meta["deepsim.embedding_dim"] == "9"
    assert all(c["ok"] for c in rep["parity"])


def test_convert_torchscript_round_trip(tmp_path):
    from deepsim_train.convert_torchscript import convert

    torch.manual_seed(0)
    net = build_feature_extractor("msaff_tiny").eval()
    mlp = build_mlp(8, hidden=16).eval()
    torch.jit.trace(net, torch.rand(1, 1, 32, 32)).save(str(tmp_path / "f.pt"))
    torch.jit.script(mlp.net).save(str(tmp_path / "m.pt"))  # the MLP body takes cat([l, r])
    rep = convert(tmp_path / "f.pt", tmp_path / "bundle", mlp=tmp_path / "m.pt", arch="msaff", pad_multiple=8)
    assert all(c["ok"] for c in rep["parity"])
    # the converted bundle computes what the original model computes, at another size too
    x = np.random.default_rng(0).random((1, 1, 40, 56), dtype=np.float32)
    sess = ort.InferenceSession(str(tmp_path / "bundle" / "features.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        np.testing.assert_allclose(sess.run(["features"], {"image": x})[0], net(torch.from_numpy(x)).numpy(), atol=1e-4)
        left, right = torch.randn(9, 8), torch.randn(9, 8)
        msess = ort.InferenceSession(str(tmp_path / "bundle" / "mlp.onnx"), providers=["CPUExecutionProvider"])
        got = msess.run(["similarity"], {"left": left.numpy(), "right": right.numpy()})[0]
        np.testing.assert_allclose(got, mlp.similarity(left, right).numpy(), atol=1e-5)
    assert read_metadata(tmp_path / "bundle" / "features.onnx")["deepsim.arch"] == "msaff"


def test_make_tiny_models_script(tmp_path):
    from conftest import script_path

    r = subprocess.run([sys.executable, str(script_path("make_tiny_models.py")), str(tmp_path / "tiny")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    import json

    man = json.loads((tmp_path / "tiny" / "manifest.json").read_text())
    assert {"tiny_conv", "patch3", "patch5", "msaff_tiny"} <= set(man["models"])
    tc = man["models"]["tiny_conv"]
    assert tc["embedding_dim"] == 8 and tc["pad_multiple"] == 8 and tc["has_mlp"]
    d = tmp_path / "tiny" / "tiny_conv"
    x, y = np.load(d / "features_input.npy"), np.load(d / "features_output.npy")
    sess = ort.InferenceSession(str(d / "features.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(["features"], {"image": x})[0], y, atol=1e-6)
    s = np.load(d / "mlp_similarity.npy")
    assert s.shape == (7,) and ((s >= 0) & (s <= 1)).all()
    # patch goldens: cosine == NCC of the windows
    p = tmp_path / "tiny" / "patch3"
    x, f = np.load(p / "features_input.npy")[0, 0], np.load(p / "features_output.npy")[0]
    win = x[4:7, 9:12].ravel()
    np.testing.assert_allclose(f[:, 5, 10], win - win.mean(), atol=1e-6)


def test_exact_margin_is_measured_and_stamped(tmp_path):
    """The exported features.onnx carries the smallest tile margin that reproduces the whole
    image's features; a network of two 3x3 convolutions (receptive radius 2 px) needs 8 px
    (the first candidate), and a margin below the receptive field is reported as not exact."""
    from deepsim_train.export import MARGIN_KEY, measure_exact_margin, stamp_exact_margin

    torch.manual_seed(0)
    net = build_feature_extractor("msaff")
    rep = export_bundle(net, None, tmp_path / "b", card={"jp": "n/a"})
    margin = int(read_metadata(tmp_path / "b" / "features.onnx")[MARGIN_KEY])
    assert rep["exact_margin_px"] == margin and margin % net.pad_multiple == 0
    _, reached = measure_exact_margin(tmp_path / "b" / "features.onnx", net.pad_multiple)
    assert reached[margin] >= 0.99999
    smaller = [m for m in reached if m < margin]
    assert all(reached[m] < 0.99999 for m in smaller)

    tiny = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3, padding=1))
    path = tmp_path / "tiny" / "features.onnx"
    path.parent.mkdir()
    torch.onnx.export(tiny, torch.zeros(1, 1, 32, 32), str(path), input_names=["image"], output_names=["features"],
                      dynamic_axes={"image": {2: "h", 3: "w"}, "features": {2: "h", 3: "w"}}, opset_version=17, dynamo=False)
    margin, reached = stamp_exact_margin(path.parent)
    assert margin == 8 and read_metadata(path)[MARGIN_KEY] == "8"
