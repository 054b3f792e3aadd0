"""Every registered model: forward, backward, gradients on every parameter, no NaN, shapes."""

from __future__ import annotations

import pytest
import torch

from deepsim_train.models import build_feature_extractor, build_mlp, count_parameters, is_trainable, list_models

# Published parameter counts (shared/docs/deepsim-nets.md); ours must be within 10 %.
DOC_PARAMS = {"msaff": 0.97e6, "msaff_global": 0.97e6, "unet32": 7.8e6, "unet_attention": 9.5e6}
DOC_MLP_PARAMS = 0.35e6


def test_registry_lists_families():
    names = list_models()
    for n in ("msaff", "unet32", "unet_attention", "patch5", "tiny_conv"):
        assert n in names
    assert "patch5" not in list_models(trainable=True)


def test_unknown_model_lists_choices():
    with pytest.raises(ValueError, match="valid choices: .*msaff"):
        build_feature_extractor("resnet9000")


@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name):
    torch.manual_seed(0)
    net = build_feature_extractor(name).train()
    m = net.pad_multiple
    h, w = 2 * max(m, 8), 3 * max(m, 8)
    x = torch.rand(2, 1, h, w, requires_grad=not is_trainable(name))
    y = net(x)
    assert y.shape == (2, net.embedding_dim, h, w)
    assert torch.isfinite(y).all()
    (y.square().mean() + y.mean()).backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: {pname} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name}: {pname} has an all-zero gradient"
    if not is_trainable(name):
        assert count_parameters(net) == 0 and x.grad is not None


@pytest.mark.parametrize("name", [n for n in list_models(trainable=True)])
def test_eval_mode_and_size_check(name):
    net = build_feature_extractor(name).eval()
    m = net.pad_multiple
    with torch.no_grad():
        y = net(torch.rand(1, 1, m * 2, m * 3))
    assert y.shape[-2:] == (m * 2, m * 3)
    if m > 1:
        with pytest.raises(ValueError, match=f"multiples of {m}"):
            net(torch.rand(1, 1, m * 2 + 1, m * 3))
    with pytest.raises(ValueError, match=r"expected shape \[B,1,H,W\]"):
        net(torch.rand(1, 3, m * 2, m * 2))
    # normalisation constants live in buffers (exported with the model)
    buffers = dict(net.named_buffers())
    assert "normalize.mean" in buffers and "normalize.std" in buffers


@pytest.mark.parametrize("name", sorted(DOC_PARAMS))
def test_parameter_counts_match_doc(name, capsys):
    n = count_parameters(build_feature_extractor(name))
    with capsys.disabled():
        print(f"\n  {name}: {n:,} parameters (doc ~{DOC_PARAMS[name] / 1e6:.2f} M)")
    assert abs(n - DOC_PARAMS[name]) / DOC_PARAMS[name] < 0.10


def test_mlp_shape_and_count(capsys):
    mlp = build_mlp(64)
    n = count_parameters(mlp)
    with capsys.disabled():
        print(f"\n  mlp: {n:,} parameters (doc ~0.35 M)")
    assert abs(n - DOC_MLP_PARAMS) / DOC_MLP_PARAMS < 0.10
    layers = [m for m in mlp.modules() if isinstance(m, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in layers] == [(128, 384), (384, 384), (384, 384), (384, 1)]
    left, right = torch.randn(10, 64), torch.randn(10, 64)
    assert mlp(left, right).shape == (10,)
    s = mlp.similarity(left, right)
    assert ((s >= 0) & (s <= 1)).all()
    maps = mlp.forward_maps(torch.randn(2, 64, 4, 5), torch.randn(2, 64, 4, 5))
    assert maps.shape == (2, 4, 5)
    with pytest.raises(ValueError, match="expected left and right"):
        mlp(torch.randn(3, 64), torch.randn(3, 32))


def test_msaff_global_variant_differs():
    torch.manual_seed(0)
    a = build_feature_extractor("msaff")
    b = build_feature_extractor("msaff_global")
    assert not a.global_pool and b.global_pool
    assert count_parameters(a) == count_parameters(b)


def test_pointwise_msaff_is_translation_equivariant():
    """The pointwise MS-CAM has no global statistic: shifting the input by a multiple of 8
    shifts the features (away from the borders)."""
    torch.manual_seed(0)
    net = build_feature_extractor("msaff_tiny").eval()
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        y = net(x)
        y2 = net(torch.roll(x, shifts=8, dims=3))
    assert torch.allclose(y[..., 24:40], y2[..., 32:48], atol=1e-4)


def test_patch_features_cosine_is_ncc():
    torch.manual_seed(0)
    net = build_feature_extractor("patch5")
    a, b = torch.rand(1, 1, 12, 12), torch.rand(1, 1, 12, 12)
    fa, fb = net(a)[0, :, 6, 6], net(b)[0, :, 6, 6]
    cos = torch.nn.functional.cosine_similarity(fa, fb, dim=0)
    pa, pb = a[0, 0, 4:9, 4:9].flatten(), b[0, 0, 4:9, 4:9].flatten()
    ncc = ((pa - pa.mean()) * (pb - pb.mean())).sum() / ((pa - pa.mean()).norm() * (pb - pb.mean()).norm())
    assert torch.allclose(cos, ncc, atol=1e-5)
    # channel c = (dy + r) * k + (dx + r)
    f = net(a)[0, :, 6, 6] + a[0, 0, 4:9, 4:9].mean()
    assert torch.allclose(f.reshape(5, 5), a[0, 0, 4:9, 4:9], atol=1e-6)
