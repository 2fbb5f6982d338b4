"""Input-space attributions: captum agreement, hand computations, toy models with known answers."""
import numpy as np
import pytest
import torch
from torch import nn

from medxai_lib.explain import (METHODS, as_heatmap, attribute, deconvnet, grad_cam, guided_backprop, guided_grad_cam,
                                input_x_gradient, integrated_gradients, lime, occlusion, rise, saliency, smooth_grad,
                                taxonomy_table)
from medxai_lib.explain.perturbation import superpixels, window_masks

from helpers import phantom_images, textured_densenet


@pytest.fixture(scope="module")
def model():
    return textured_densenet()


@pytest.fixture(scope="module")
def images():
    return phantom_images(3, size=64)


def test_saliency_and_input_x_gradient_match_captum(model, images):
    from captum.attr import InputXGradient, Saliency
    ours_s, ours_ixg = saliency(model, images), input_x_gradient(model, images)
    assert ours_s.shape == (3, 3, 1, 64, 64)
    for c in range(3):
        assert torch.allclose(ours_s[:, c], Saliency(model).attribute(images, target=c, abs=True), atol=1e-6)
        assert torch.allclose(ours_ixg[:, c], InputXGradient(model).attribute(images, target=c).detach(), atol=1e-6)


def test_guided_backprop_and_deconvnet_match_captum(model, images):
    from captum.attr import Deconvolution, GuidedBackprop
    gb, dc = guided_backprop(model, images, 2), deconvnet(model, images, 2)
    assert torch.allclose(gb[:, 0], GuidedBackprop(model).attribute(images, target=2).detach(), atol=1e-6)
    assert torch.allclose(dc[:, 0], Deconvolution(model).attribute(images, target=2).detach(), atol=1e-6)
    assert not torch.allclose(gb, dc, atol=1e-4)
    # hooks are removed afterwards: plain gradients are untouched
    assert torch.allclose(saliency(model, images, 2), saliency(model, images, 2))
    x = images.clone().requires_grad_(True)
    model(x)[:, 2].sum().backward()
    assert torch.allclose(x.grad.abs(), saliency(model, images, 2)[:, 0], atol=1e-6)


def test_deconvnet_relu_rule_by_hand():
    """conv -> ReLU -> linear: the deconvnet passes relu(W2) back through the ReLU regardless of the
    forward mask, guided backprop keeps the mask too."""
    conv = nn.Conv2d(1, 2, 1, bias=False)
    net = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4, 1, bias=False))
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[1.0]]], [[[-1.0]]]]))
        net[3].weight.copy_(torch.tensor([[1.0, -2.0, 3.0, -4.0, 5.0, -6.0, 7.0, -8.0]]))
    x = torch.tensor([[[[1.0, -1.0], [2.0, -2.0]]]])
    w2 = net[3].weight.view(2, 4)
    forward_mask = torch.stack([(x.flatten() > 0), (-x.flatten() > 0)]).float()
    expected_deconv = (torch.relu(w2) * conv.weight.view(2, 1)).sum(0).view(1, 1, 2, 2)
    expected_guided = (torch.relu(w2) * forward_mask * conv.weight.view(2, 1)).sum(0).view(1, 1, 2, 2)
    assert torch.allclose(deconvnet(net, x, 0)[:, 0], expected_deconv)
    assert torch.allclose(guided_backprop(net, x, 0)[:, 0], expected_guided)


def test_guided_grad_cam_is_guided_backprop_times_upsampled_grad_cam(model, images):
    ours = guided_grad_cam(model, images, "features", 1)
    coarse = torch.nn.functional.interpolate(grad_cam(model, images, "features", 1), size=64, mode="bilinear")
    assert torch.allclose(ours, guided_backprop(model, images, 1) * coarse[:, :, None], atol=1e-7)


def test_smooth_grad_without_noise_is_saliency(model, images):
    assert torch.allclose(smooth_grad(model, images, [0, 2], n_samples=3, noise_level=0.0),
                          saliency(model, images, [0, 2]), atol=1e-6)
    noisy = smooth_grad(model, images, 1, n_samples=8, noise_level=0.2)
    assert noisy.shape == (3, 1, 1, 64, 64) and not torch.allclose(noisy, saliency(model, images, 1), atol=1e-5)
    assert torch.equal(noisy, smooth_grad(model, images, 1, n_samples=8, noise_level=0.2))  # seeded


def test_integrated_gradients_completeness(model, images):
    attr = integrated_gradients(model, images, 1, n_steps=128)
    with torch.no_grad():
        delta = model(images)[:, 1] - model(torch.zeros_like(images))[:, 1]
    assert torch.allclose(attr.sum((1, 2, 3, 4)), delta, atol=0.05 * delta.abs().max().item())


def test_occlusion_matches_captum_with_every_class_from_shared_forwards(model, images):
    from captum.attr import Occlusion
    ours = occlusion(model, images, window=16, stride=8, chunk_size=5)
    for c in range(3):
        theirs = Occlusion(model).attribute(images, target=c, sliding_window_shapes=(1, 16, 16), strides=(1, 8, 8),
                                            baselines=0.0, perturbations_per_eval=49)
        assert torch.allclose(ours[:, c], theirs, atol=1e-5)


def test_occlusion_counts_forwards():
    calls = []

    def scorer(x):
        calls.append(len(x))
        return x.mean((1, 2, 3))[:, None].repeat(1, 4)

    x = torch.rand(2, 1, 32, 32)
    out = occlusion(scorer, x, window=8, stride=8, chunk_size=16)
    assert out.shape == (2, 4, 1, 32, 32)
    assert calls == [2, 16, 16]  # one clean forward, then each image's 16 windows in one chunk
    assert len(window_masks(32, 32, 8, 8)) == 16


def _region_model(region):
    """A model-agnostic scorer whose single logit is 20 x (mean intensity inside ``region``) - 5."""
    def scorer(x):
        return (20 * (x * region).sum((1, 2, 3)) / region.sum() - 5)[:, None]
    return scorer


def test_rise_and_lime_find_the_region_that_drives_the_score():
    region = torch.zeros(1, 48, 48)
    region[:, 8:20, 28:44] = 1
    scorer = _region_model(region)
    torch.manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(2, 1, 8, 8), size=48, mode="bilinear")
    x = smooth * 0.5 + 0.5  # superpixels need structure; pure noise gives a single segment
    for name, maps in {"rise": rise(scorer, x, n_masks=300, grid=6)[:, 0, 0],
                       "lime": lime(scorer, x, n_samples=150, n_segments=30)[:, 0, 0],
                       "occlusion": occlusion(scorer, x, window=8, stride=4)[:, 0, 0]}.items():
        inside = maps[:, region[0] > 0].mean(1)
        outside = maps[:, region[0] == 0].mean(1)
        assert (inside > outside + 0.1 * maps.abs().amax((1, 2))).all(), name


def test_superpixels_cover_the_image():
    torch.manual_seed(0)
    seg = superpixels(torch.nn.functional.interpolate(torch.rand(1, 3, 6, 6), size=40, mode="bilinear")[0], 20)
    assert seg.shape == (40, 40) and seg.min() == 0 and len(np.unique(seg)) > 5


# ---- registry -------------------------------------------------------------------------------------
def test_registry_dispatches_every_method(model, images):
    for name, info in METHODS.items():
        kwargs = {"n_samples": 20} if name in ("lime", "smooth_grad", "gradient_shap") else {}
        kwargs |= {"n_masks": 40} if name == "rise" else {}
        kwargs |= {"n_steps": 8} if name == "integrated_gradients" else {}
        out = attribute(model, images[:2], name, layer="features" if info.needs_layer else None, classes=1, **kwargs)
        assert out.shape[:2] == (2, 1), name
        assert as_heatmap(out, 64).shape == (2, 1, 64, 64), name
        assert torch.isfinite(out).all(), name
    table = taxonomy_table()
    assert set(table.index) == set(METHODS)
    assert set(table["access"]) == {"model-specific", "model-agnostic"}
    assert table.loc["occlusion", "access"] == "model-agnostic" and table.loc["grad_cam", "needs layer"]


def test_registry_bad_input(model, images):
    with pytest.raises(ValueError, match="unknown 'gradcam'; valid methods: ablation_cam, cam"):
        attribute(model, images, "gradcam")
    with pytest.raises(ValueError, match="needs a layer"):
        attribute(model, images, "score_cam")
    with pytest.raises(ValueError, match="takes no layer"):
        attribute(model, images, "saliency", layer="features")
    bad = images.clone()
    bad[0, 0, 0, 0] = float("nan")
    for method in ("saliency", "occlusion", "integrated_gradients"):
        with pytest.raises(ValueError, match="NaN"):
            attribute(model, bad, method)
    with pytest.raises(ValueError, match="window"):
        occlusion(model, images, window=100)
    with pytest.raises(ValueError, match="keep_prob"):
        rise(model, images, keep_prob=1.0)
    with pytest.raises(ValueError, match="attribution"):
        as_heatmap(torch.zeros(2, 3), 8)
