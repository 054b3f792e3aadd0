"""`deepsim-train quantize`: the int8 variant of a bundle's feature extractor (QDQ, ONNX Runtime)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from deepsim_train.export import export_bundle, read_metadata
from deepsim_train.models import build_feature_extractor, build_mlp
from deepsim_train.quantize import CARD_HEADING, INT8_FILE, QuantizeConfig, fold_fp16_weights, rewrite_constant_subs, run_quantize


@pytest.fixture
def bundle(tmp_path):
    torch.manual_seed(0)
    net = build_feature_extractor("msaff_tiny")
    export_bundle(net, build_mlp(net.embedding_dim, hidden=16, depth=2), tmp_path / "b", fp16=True)
    return tmp_path / "b"


@pytest.fixture
def pair(tmp_path):
    rng = np.random.default_rng(3)
    folder = tmp_path / "pair"
    folder.mkdir()
    base = (rng.random((96, 128)) * 255).astype(np.uint8)
    Image.fromarray(base).save(folder / "left.png")
    Image.fromarray(np.roll(base, -4, axis=1)).save(folder / "right.png")
    return folder


def test_fp16_casts_fold_to_the_same_numbers(bundle):
    m, folded = fold_fp16_weights(onnx.load(str(bundle / "features.onnx")))
    assert folded > 0 and not any(n.op_type == "Cast" for n in m.graph.node)
    x = np.random.default_rng(0).random((1, 1, 32, 48), dtype=np.float32)
    a = ort.InferenceSession(str(bundle / "features.onnx"), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    b = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    np.testing.assert_array_equal(a, b)


def test_constant_subs_rewrite_to_the_same_numbers(bundle):
    m, _ = fold_fp16_weights(onnx.load(str(bundle / "features.onnx")))
    before = sum(n.op_type == "Sub" for n in m.graph.node)
    m, rewritten = rewrite_constant_subs(m)
    # msaff's attention fusions compute 1 - sigmoid(z); the input normalisation's Sub (image - mean) stays
    assert rewritten >= 1 and sum(n.op_type == "Sub" for n in m.graph.node) == before - rewritten
    x = np.random.default_rng(1).random((1, 1, 32, 48), dtype=np.float32)
    a = ort.InferenceSession(str(bundle / "features.onnx"), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    b = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_quantize_writes_a_contract_int8_variant_with_its_parity(bundle, pair):
    report = run_quantize(QuantizeConfig(bundle=str(bundle), pairs=[str(pair)], crops=3, crop=64), command="test")
    int8 = bundle / INT8_FILE
    meta = read_metadata(int8)
    fp32 = read_metadata(bundle / "features.onnx")
    assert meta["deepsim.precision"] == "int8" and "deepsim.precision" not in fp32
    for k in ("deepsim.contract", "deepsim.role", "deepsim.arch", "deepsim.embedding_dim", "deepsim.pad_multiple"):
        assert meta[k] == fp32[k], k
    m = onnx.load(str(int8))
    ops = {n.op_type for n in m.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert {o.domain for o in m.opset_import} <= {"", "ai.onnx"} and m.opset_import[0].version >= 17
    # the first (1-channel) convolutions stay float; the embedding's own is int8, dequantised
    assert len(report["quantize"]["excluded"]) >= 1 and report["quantize"]["rewritten_subs"] >= 1
    assert m.graph.node[-1].op_type == "DequantizeLinear"
    assert report["embedding_parity"]["cosine_mean"] > 0.99
    card = (bundle / "card.md").read_text()
    assert card.count(CARD_HEADING) == 1 and "Embedding cosine to fp32" in card
    # running it again replaces the card's section instead of adding one
    run_quantize(QuantizeConfig(bundle=str(bundle), pairs=[str(pair)], crops=2, crop=64), command="again")
    card = (bundle / "card.md").read_text()
    assert card.count(CARD_HEADING) == 1 and "again" in card


def test_quantize_refuses_labelled_pairs_and_missing_sources(bundle, tmp_path, pair):
    with pytest.raises(ValueError, match="calibration images"):
        run_quantize(QuantizeConfig(bundle=str(bundle)), command="test")
    (pair / "disp0.pfm").write_bytes(b"")
    with pytest.raises(ValueError, match="ground truth"):
        run_quantize(QuantizeConfig(bundle=str(bundle), pairs=[str(pair)]), command="test")
    assert not (bundle / INT8_FILE).exists()
