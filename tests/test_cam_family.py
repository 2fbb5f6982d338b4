"""The CAM family: hand computations and agreement with pytorch-grad-cam (the agreement harness)."""
import numpy as np
import pytest
import torch

from medxai_lib.explain import (ablation_cam, eigen_cam, grad_cam, grad_cam_pp, hires_cam, layer_cam, normalize,
                                score_cam, upsample, xgrad_cam)
from medxai_lib.explain.capture import eval_mode

from helpers import phantom_images, textured_densenet

LAYER = "features.transition3"


@pytest.fixture(scope="module")
def model():
    return textured_densenet()


@pytest.fixture(scope="module")
def images():
    return phantom_images(4)


def _activation_and_grad(model, images, layer, cls):
    store = {}
    module = dict(model.named_modules())[layer]
    handle = module.register_forward_hook(lambda m, i, o: store.setdefault("a", o))
    with eval_mode(model):
        out = model(images)
    handle.remove()
    (g,) = torch.autograd.grad(out[:, cls].sum(), store["a"])
    return store["a"].detach(), g


def test_gradient_variants_match_their_formulas(model, images):
    a, g = _activation_and_grad(model, images, LAYER, 1)
    expected = {
        "hires": torch.relu((g * a).sum(1)),
        "layer": torch.relu((torch.relu(g) * a).sum(1)),
        "xgrad": torch.relu(torch.einsum("bk,bkhw->bhw", (g * a).sum((2, 3)) / (a.sum((2, 3)) + 1e-7), a)),
    }
    g2, g3 = g ** 2, g ** 3
    denom = 2 * g2 + a.sum((2, 3), keepdim=True) * g3
    alpha = torch.where(denom != 0, g2 / torch.where(denom != 0, denom, torch.ones_like(denom)), torch.zeros_like(g))
    expected["pp"] = torch.relu(torch.einsum("bk,bkhw->bhw", (alpha * torch.relu(g)).sum((2, 3)), a))
    got = {"hires": hires_cam, "layer": layer_cam, "xgrad": xgrad_cam, "pp": grad_cam_pp}
    for name, fn in got.items():
        assert torch.allclose(fn(model, images, LAYER, 1)[:, 0], expected[name], atol=1e-6, rtol=1e-4), name


def test_hires_equals_grad_cam_on_the_pooled_tensor(model, images):
    """At the GAP input the gradient is constant over positions, so HiRes-CAM = Grad-CAM there;
    elsewhere they differ."""
    hires, grad = hires_cam(model, images, "features"), grad_cam(model, images, "features")
    assert torch.allclose(hires, grad, atol=1e-6 * hires.abs().max().item())
    assert not torch.allclose(hires_cam(model, images, LAYER), grad_cam(model, images, LAYER), atol=1e-4)


def test_score_cam_weights_by_hand(model, images):
    x = images[:1]
    a, _ = _activation_and_grad(model, x, LAYER, 0)
    up = torch.nn.functional.interpolate(a, size=x.shape[-2:], mode="bilinear", align_corners=False)
    lo, hi = up.amin((2, 3), keepdim=True), up.amax((2, 3), keepdim=True)
    masks = torch.where(hi > lo, (up - lo) / (hi - lo).clamp_min(1e-12), torch.zeros_like(up))
    with torch.no_grad():
        scores = model(x * masks[0][:, None])                     # (K, classes)
    expected = torch.relu(torch.einsum("k,khw->hw", scores[:, 2], a[0]))
    for chunk in (1, 7, "auto"):
        got = score_cam(model, x, LAYER, 2, chunk_size=chunk)[0, 0]
        assert torch.allclose(got, expected, atol=1e-5, rtol=1e-4), chunk
    with torch.no_grad():
        base = model(torch.zeros_like(x))[0, 2]
    with_base = score_cam(model, x, LAYER, 2, baseline=True)[0, 0]
    assert torch.allclose(with_base, torch.relu(torch.einsum("k,khw->hw", scores[:, 2] - base, a[0])), atol=1e-5, rtol=1e-4)


def test_ablation_cam_by_hand_and_upstream_runs_once(model, images):
    x = images[:1]
    a, _ = _activation_and_grad(model, x, "features", 0)
    with torch.no_grad():
        original = model(x)[0, 0]
        ablated = []
        for k in range(a.shape[1]):
            z = a.clone()
            z[0, k] = 0
            ablated.append(model.classifier(z.mean((2, 3)))[0, 0])
    weights = (original - torch.stack(ablated)) / original
    expected = torch.relu(torch.einsum("k,khw->hw", weights, a[0]))
    got = ablation_cam(model, x, "features", 0, chunk_size=16)[0, 0]
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-4)


def test_eigen_cam_is_first_principal_component(model, images):
    a, _ = _activation_and_grad(model, images, LAYER, 0)
    maps = eigen_cam(model, images, LAYER, [0, 1])
    assert torch.equal(maps[:, 0], maps[:, 1])  # class-agnostic
    for b in range(len(images)):
        rows = a[b].flatten(1).T.numpy()
        rows = rows - rows.mean(0)
        pc = np.linalg.svd(rows, full_matrices=False)[2][0]
        proj = (rows @ pc).reshape(a.shape[-2:])
        corr = np.corrcoef(proj.ravel(), maps[b, 0].numpy().ravel())[0, 1]
        assert abs(corr) > 0.9999
        total = a[b].sum(0).numpy().ravel()
        assert np.corrcoef(maps[b, 0].numpy().ravel(), total)[0, 1] >= 0  # sign convention


# ---- agreement harness ------------------------------------------------------------------------------
def test_agreement_harness_every_peer_case(model, images):
    """Every method a peer also has gives the same normalised map (r > 0.99), under the stated relation."""
    from medxai_lib.evaluate.agreement import CASES, peer_agreement
    table = peer_agreement(model, images, target=1)
    assert len(table) == len(CASES) >= 14
    bad = table[table["min r"] <= 0.99]
    assert bad.empty, bad.to_string()


def test_score_cam_documented_difference_from_pytorch_grad_cam(model, images):
    """pytorch-grad-cam softmaxes Score-CAM's scores over channels; the paper uses raw class scores.
    With channel_softmax=False the maps differ exactly by that weighting."""
    x = images[:2]
    raw = score_cam(model, x, "features", 1)
    soft = score_cam(model, x, "features", 1, channel_softmax=True)
    assert not torch.allclose(normalize(raw), normalize(soft), atol=1e-3)


def test_grad_cam_pp_documented_eps_difference(model, images):
    """pytorch-grad-cam adds eps=1e-6 to the denominator; with gradients of ~1e-3 (g^2 ~ 1e-6) that
    changes the weights, so the exact formula (eps=0, our default) gives a visibly different map."""
    exact = grad_cam_pp(model, images, "features.transition2", 1)
    peer_like = grad_cam_pp(model, images, "features.transition2", 1, eps=1e-6)
    assert (normalize(exact) - normalize(peer_like)).abs().max() > 0.05


def test_all_classes_at_once_equal_one_at_a_time(model, images):
    for fn in (grad_cam_pp, layer_cam, score_cam, ablation_cam):
        every = fn(model, images[:2], "features")
        for c in range(3):
            assert torch.allclose(every[:, c], fn(model, images[:2], "features", c)[:, 0], atol=1e-5), fn.__name__


def test_bad_chunk_size(model, images):
    with pytest.raises(ValueError, match="chunk_size"):
        score_cam(model, images, "features", chunk_size=0)
    with pytest.raises(ValueError, match="chunk_size"):
        ablation_cam(model, images, "features", chunk_size="big")
