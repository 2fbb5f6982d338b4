import numpy as np
import pytest
import torch
from torch import nn

from medxai_lib.explain import cam, cam_contribution, grad_cam, normalize, upsample
from medxai_lib.models import densenet169, densenet_block_layers

from helpers import phantom_images, textured_densenet


@pytest.fixture(scope="module")
def small():
    return textured_densenet()


@pytest.fixture(scope="module")
def images():
    return phantom_images(4)


def test_identity_grad_cam_times_area_equals_relu_cam(small, images):
    raw = cam(small, images)
    maps = grad_cam(small, images, "features")
    h, w = maps.shape[-2:]
    assert raw.shape == maps.shape == (4, 3, 6, 6)
    assert (raw < 0).any() and (raw > 0).any()  # the identity is not trivially about zeros
    assert torch.allclose(maps * h * w, raw.relu(), atol=1e-5 * raw.abs().max().item())


def test_identity_fails_before_the_last_relu(small, images):
    raw = cam(small, images)
    pre_relu = grad_cam(small, images, "features.norm5")
    h, w = pre_relu.shape[-2:]
    gap = (pre_relu * h * w - raw.relu()).norm() / raw.relu().norm()
    assert gap > 0.1


def test_identity_on_full_densenet169():
    torch.manual_seed(2)
    model = densenet169(num_classes=2).eval()
    x = torch.randn(2, 3, 96, 96)
    raw, maps = cam(model, x), grad_cam(model, x, "features")
    h, w = maps.shape[-2:]
    assert torch.allclose(maps * h * w, raw.relu(), atol=1e-5 * raw.abs().max().item())


def test_cam_equals_hand_computation_and_decomposes_the_logit(small, images):
    raw = cam(small, images, classes=[2, 0])
    with torch.no_grad():
        feats = small.features(images)
        logits = small(images)
    weight, bias = small.classifier.weight, small.classifier.bias
    by_hand = torch.einsum("k,bkhw->bhw", weight[2], feats)
    assert torch.allclose(raw[:, 0], by_hand, atol=1e-5)
    # mean over the map + bias is the logit: CAM splits the logit over space
    assert torch.allclose(raw.mean((2, 3)) + bias[[2, 0]], logits[:, [2, 0]], atol=1e-5)
    everywhere = torch.ones(4, 1, 96, 96)
    assert torch.allclose(cam_contribution(raw, everywhere), raw.mean((2, 3)), atol=1e-6)
    left = torch.zeros(4, 1, 96, 96)
    left[..., :48] = 1
    right = 1 - left
    assert torch.allclose(cam_contribution(raw, left) + cam_contribution(raw, right), raw.mean((2, 3)), atol=1e-5)


def test_agrees_with_pytorch_grad_cam(small, images):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    ours = normalize(upsample(grad_cam(small, images, "features.transition2", classes=1), 96))[:, 0]
    with GradCAM(model=small, target_layers=[small.features.transition2]) as peer:
        theirs = torch.from_numpy(peer(input_tensor=images, targets=[ClassifierOutputTarget(1)] * 4))
    compared = 0
    for a, b in zip(ours, theirs):
        if a.std() == 0 or b.std() == 0:  # an all-negative map is ReLU'd to zero by both
            assert a.abs().max() == 0 and b.abs().max() < 1e-6
            continue
        corr = np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1]
        assert corr > 0.999, corr
        compared += 1
    assert compared >= 2


def test_agrees_with_captum_layer_grad_cam(small, images):
    from captum.attr import LayerGradCam

    for layer in ("features", "features.transition1"):
        ours = grad_cam(small, images, layer, classes=2)
        module = dict(small.named_modules())[layer]
        theirs = LayerGradCam(small, module).attribute(images, target=2, relu_attributions=True)
        assert torch.allclose(ours, theirs.detach(), atol=1e-6), layer


def test_all_classes_and_layers_from_one_forward_without_parameter_grads(small, images):
    small.zero_grad(set_to_none=True)
    calls = []
    handle = small.register_forward_hook(lambda *_: calls.append(1))
    try:
        layers = list(densenet_block_layers(small).values())
        out = grad_cam(small, images, layers)
    finally:
        handle.remove()
    assert len(calls) == 1
    assert list(out) == layers and [m.shape[-1] for m in out.values()] == [24, 12, 6, 6]
    assert all(m.shape[:2] == (4, 3) for m in out.values())
    assert all(p.grad is None for p in small.parameters())
    single = grad_cam(small, images, "features.transition1", classes=1)
    assert torch.allclose(out["features.transition1"][:, 1:2], single, atol=1e-6)


def test_class_selection(small, images):
    with torch.no_grad():
        pred = small(images).argmax(1)
    by_pred = grad_cam(small, images, "features", classes="pred")
    every = grad_cam(small, images, "features")
    assert by_pred.shape == (4, 1, 6, 6)
    assert torch.allclose(by_pred[:, 0], every[torch.arange(4), pred])
    per_image = grad_cam(small, images, "features", classes=torch.tensor([0, 1, 2, 0]))
    assert torch.allclose(per_image[:, 0], every[torch.arange(4), torch.tensor([0, 1, 2, 0])])


def test_post_sigmoid_score_scales_each_map_by_sigmoid_derivative(small, images):
    """The seed demo differentiates sigmoid(z): the map is multiplied by s'(z) = s(1-s), per image."""
    with torch.no_grad():
        z = small(images)[:, 0]
    plain = grad_cam(small, images, "features", classes=0)
    squashed = grad_cam(small, images, "features", classes=0, score_fn=torch.sigmoid)
    factor = torch.sigmoid(z) * (1 - torch.sigmoid(z))
    assert torch.allclose(squashed, plain * factor[:, None, None, None], atol=1e-7)


def test_model_mode_is_restored_and_frozen_models_work(small, images):
    small.train()
    for p in small.parameters():
        p.requires_grad_(False)
    try:
        maps = grad_cam(small, images, "features", classes=0)
        assert small.training and maps.abs().sum() > 0
    finally:
        small.eval()
        for p in small.parameters():
            p.requires_grad_(True)


def test_upsample_and_normalize():
    maps = torch.tensor([[[[0.0, 2.0], [4.0, 8.0]]], [[[3.0, 3.0], [3.0, 3.0]]]])
    norm = normalize(maps)
    assert torch.allclose(norm[0, 0], torch.tensor([[0.0, 0.25], [0.5, 1.0]]))
    assert torch.equal(norm[1], torch.zeros(1, 2, 2))
    assert upsample(maps, 8).shape == (2, 1, 8, 8) and upsample(maps, (4, 6)).shape == (2, 1, 4, 6)
    with pytest.raises(ValueError, match="maps"):
        normalize(maps[0])
    with pytest.raises(ValueError, match="size"):
        upsample(maps, 0)


# ---- bad input -------------------------------------------------------------------------------
def test_unknown_layer_lists_valid_names(small, images):
    with pytest.raises(ValueError, match=r"no submodule named 'features.denseblock9'.*features.denseblock1") as err:
        grad_cam(small, images, "features.denseblock9")
    assert "Did you mean" in str(err.value)
    with pytest.raises(ValueError, match="not a submodule"):
        grad_cam(small, images, nn.Conv2d(1, 1, 1))
    with pytest.raises(ValueError, match="layer"):
        grad_cam(small, images, [])


@pytest.mark.parametrize("classes, message", [(3, r"\[3\] out of range.*3 output"), (-1, "out of range"),
                                              ([0, 7], "out of range"), ("max", "'pred'"), (1.0, "classes"),
                                              (torch.tensor([0, 1]), "B = 4")])
def test_bad_classes(small, images, classes, message):
    with pytest.raises((ValueError, TypeError), match=message):
        grad_cam(small, images, "features", classes=classes)


def test_bad_images(small, images):
    with pytest.raises(ValueError, match="4-D"):
        grad_cam(small, images[0], "features")
    with pytest.raises(ValueError, match="1 channels, got 3"):
        grad_cam(small, images.repeat(1, 3, 1, 1), "features")
    with pytest.raises(ValueError, match="empty batch"):
        cam(small, images[:0])
    with pytest.raises(TypeError, match="torch.Tensor"):
        cam(small, images.numpy())
    with pytest.raises(TypeError, match="floating"):
        cam(small, images.long())


def test_cam_refuses_models_it_cannot_explain(images):
    class BiasAfterPool(nn.Module):  # logits are not classifier(avgpool(features(x)))
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
            self.classifier = nn.Linear(4, 2)

        def forward(self, x):
            return self.classifier(self.features(x).amax((2, 3)))

    with pytest.raises(ValueError, match="not classifier\\(avgpool"):
        cam(BiasAfterPool().eval(), images)
    conv_head = nn.Sequential()
    conv_head.add_module("features", nn.Conv2d(1, 2, 3))
    conv_head.add_module("classifier", nn.Conv2d(2, 2, 1))
    with pytest.raises(ValueError, match="nn.Linear"):
        cam(conv_head, images)
