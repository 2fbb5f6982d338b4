"""The CAM family: hand computations and agreement with pytorch-grad-cam (the agreement harness)."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from medxai_lib.explain import (ablation_cam, eigen_cam, grad_cam, grad_cam_pp, hires_cam, layer_cam, normalize,
                                score_cam, xgrad_cam)
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
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from peers import CASES, peer_agreement  # dev-only harness, kept with the benchmarks
    table = peer_agreement(model, images, target=1)
    assert len(table) == len(CASES) >= 14
    bad = table[table["min r"] <= 0.99]
    assert bad.empty, bad.to_string()


class _GapNet(nn.Module):
    """conv -> ReLU -> 4x4 average pool (the hooked ``features``, 4x4 for a 16x16 input) -> GAP -> linear:
    small enough to compute Score-CAM (at ``features``, 4x smaller than the input, so how masks are
    upsampled matters) and Grad-CAM++ (at the conv output, where the ReLU makes gradients vary) by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.AvgPool2d(4))
        self.classifier = nn.Linear(6, 3)

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


def _peer(cls_name, model, x, target, layer="features"):
    """pytorch-grad-cam's map: relu(cam) min-max scaled, resized to the input, scaled again."""
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    with getattr(pgc, cls_name)(model=model, target_layers=[model.get_submodule(layer)]) as peer:
        return peer(input_tensor=x, targets=[ClassifierOutputTarget(target)] * len(x))


def _as_peer_scales(maps):
    """Our ``(B, h, w)`` maps through the peer's own post-processing, so any difference is the formula's."""
    from pytorch_grad_cam.utils.image import scale_cam_image
    return scale_cam_image(scale_cam_image(maps.detach().numpy(), (16, 16)))


def _score_cam_by_hand(model, x, target, channel_softmax, align_corners):
    """Score-CAM from its definition: w_k = class score of x * minmax(upsample(A_k)); relu(sum_k w_k A_k),
    with w softmaxed over the channels when ``channel_softmax``."""
    with torch.no_grad():
        a = model.features(x)                                                   # (B, K, h, w)
        up = torch.nn.functional.interpolate(a, size=x.shape[-2:], mode="bilinear", align_corners=align_corners)
        lo, hi = up.amin((2, 3), keepdim=True), up.amax((2, 3), keepdim=True)
        masks = torch.where(hi > lo, (up - lo) / (hi - lo).clamp_min(1e-12), torch.zeros_like(up))  # dead channel: 0
        w = torch.stack([model(x[b:b + 1] * masks[b][:, None])[:, target] for b in range(len(x))])   # (B, K)
        w = torch.softmax(w, 1) if channel_softmax else w
        return torch.relu(torch.einsum("bk,bkhw->bhw", w, a))


def test_score_cam_documented_difference_from_pytorch_grad_cam():
    """docs/benchmarks.md: pytorch-grad-cam softmaxes Score-CAM's scores over channels (and upsamples the
    masks with align_corners=True); the paper weights channel k by the raw class score of the masked input.
    With channel_softmax=True, align_corners=True ours *is* the peer's map; by default it is the paper's
    formula, which the peer does not compute."""
    torch.manual_seed(0)
    model = _GapNet().eval()
    with torch.no_grad():
        model.classifier.weight.normal_()                       # scores that vary over the masked inputs
        model.classifier.bias[1] = 3.0                          # positive class scores: the raw map is not all zero
    x = torch.rand(2, 1, 16, 16) * 10
    theirs = _peer("ScoreCAM", model, x, 1)
    peer_like = score_cam(model, x, "features", 1, channel_softmax=True, align_corners=True)[:, 0]
    assert np.allclose(_as_peer_scales(peer_like), theirs, atol=1e-5)
    assert torch.allclose(peer_like, _score_cam_by_hand(model, x, 1, True, True), atol=1e-6, rtol=1e-5)
    paper = score_cam(model, x, "features", 1)[:, 0]
    expected = _score_cam_by_hand(model, x, 1, False, False)
    assert expected.amax((1, 2)).min() > 0 and torch.allclose(paper, expected, atol=1e-6, rtol=1e-5)
    assert np.abs(_as_peer_scales(paper) - theirs).max() > 0.05                    # the weighting differs visibly
    softmax_only = score_cam(model, x, "features", 1, channel_softmax=True)[:, 0]   # align_corners alone matters too
    assert torch.allclose(softmax_only, _score_cam_by_hand(model, x, 1, True, False), atol=1e-6, rtol=1e-5)
    assert np.abs(_as_peer_scales(softmax_only) - theirs).max() > 5e-3


def _grad_cam_pp_closed_form(model, x, target, eps):
    """Grad-CAM++ (Chattopadhay et al. 2018, eq. 19) at the conv output A of :class:`_GapNet`, whose logits
    are W mean_ij relu(A_ij) + b: the gradient is g_kij = W_ck / (H W) where A_kij > 0, else 0, so
    alpha_kij = g^2 / (2 g^2 + S_k g^3 + eps) with S_k = sum_ab A_kab over *all* positions (the paper's form;
    torchcam's sum_ab A_kab g_kab^3 would sum the positive ones only), 0 where g = 0;
    weight_k = sum_ij alpha_kij relu(g_kij); map = relu(sum_k weight_k A_k)."""
    with torch.no_grad():
        a = model.features[0](x).double()                                     # (B, K, H, W), pre-ReLU
        g = model.classifier.weight[target].double()[None, :, None, None] / a[0, 0].numel() * (a > 0)
        s = a.sum((2, 3), keepdim=True)
        denom = 2 * g ** 2 + s * g ** 3 + eps
        alpha = torch.where(g != 0, g ** 2 / torch.where(denom != 0, denom, torch.ones_like(denom)), torch.zeros_like(g))
        weight = (alpha * torch.relu(g)).sum((2, 3))
        return torch.relu(torch.einsum("bk,bkhw->bhw", weight, a)).float()


def test_grad_cam_pp_documented_eps_difference():
    """docs/benchmarks.md: pytorch-grad-cam adds eps=1e-6 to Grad-CAM++'s denominator 2g^2 + sum(A) g^3; with
    gradients of ~1e-3 (g^2 ~ 1e-6) that changes the weights. With eps=1e-6 ours is the peer's map; by
    default (eps=0) it is the paper's closed form, computed here by hand."""
    torch.manual_seed(0)
    model = _GapNet().eval()
    with torch.no_grad():
        model.classifier.weight.uniform_(-0.5, 0.5)           # g = W / 256 ~ 1e-3
        model.classifier.weight[1, 0] = 0.0                   # one channel with g = 0 (alpha defined as 0)
    x = torch.rand(2, 1, 16, 16) * 10                         # sum(A) g ~ 1: the g^3 term matters
    layer = "features.0"
    exact = grad_cam_pp(model, x, layer, 1)[:, 0]
    peer_like = grad_cam_pp(model, x, layer, 1, eps=1e-6)[:, 0]
    assert torch.allclose(exact, _grad_cam_pp_closed_form(model, x, 1, 0.0), atol=1e-5, rtol=1e-4)
    assert torch.allclose(peer_like, _grad_cam_pp_closed_form(model, x, 1, 1e-6), atol=1e-5, rtol=1e-4)
    theirs = _peer("GradCAMPlusPlus", model, x, 1, layer)
    assert np.allclose(_as_peer_scales(peer_like), theirs, atol=1e-5)
    assert np.abs(_as_peer_scales(exact) - theirs).max() > 0.05           # eps changes the map visibly
    assert (normalize(exact[:, None]) - normalize(peer_like[:, None])).abs().max() > 0.05


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
