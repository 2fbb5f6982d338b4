"""The seed-004 demo's code path: in-place ReLU + hooks after the forward = Grad-CAM on the pooled tensor."""
import pytest
import torch
import torchvision

from helpers import phantom_images, textured_densenet
from medxai_lib.explain import cam, grad_cam
from medxai_lib.explain.seed_demo import (demo_maps, relu_cam_gap, sigmoid_factor, stored_vs_snapshot,
                                          trace_multiclass)

LAYERS = ["features.transition1", "features.transition2", "features.transition3"]


@pytest.fixture(scope="module")
def net():
    return textured_densenet(num_classes=1)


@pytest.fixture(scope="module")
def x():
    return phantom_images(4)


def test_demo_as_written_is_relu_cam_up_to_the_sigmoid_factor(net, x):
    result = demo_maps(net, x)
    assert result.gap() < 1e-5
    assert torch.allclose(result.cam, cam(net, x, classes=0), atol=1e-6)      # get_cam: weights, no bias
    assert torch.allclose(result.scores, torch.sigmoid(net(x)), atol=1e-6)
    # and it is exactly the library's Grad-CAM of the post-sigmoid score on the pooled tensor
    lib = grad_cam(net, x, LAYERS + ["features"], classes=0, score_fn=torch.sigmoid)
    for mine, theirs in zip(result.grad_cams, lib.values()):
        assert torch.allclose(mine, theirs, rtol=1e-4, atol=1e-9)


def test_out_of_place_relu_is_the_pre_relu_norm5_hook(net, x):
    result = demo_maps(net, x, relu="out_of_place")
    assert result.gap() > 0.05
    lib = grad_cam(net, x, "features.norm5", classes=0, score_fn=torch.sigmoid)
    assert torch.allclose(result.grad_cams[-1], lib, rtol=1e-4, atol=1e-9)
    # blocks 1-3 are not touched by the ReLU: the same maps either way
    inplace = demo_maps(net, x)
    for a, b in zip(result.grad_cams[:3], inplace.grad_cams[:3]):
        assert torch.allclose(a, b)


def test_hooks_registered_before_the_in_place_relu_see_the_pre_relu_gradient(net, x):
    early = demo_maps(net, x, hook_time="at_store")
    assert early.gap() > 0.05
    # hand computation: alpha from the masked (pre-ReLU) gradient, activations overwritten by the ReLU
    with torch.no_grad():
        feats = net.features[:-1](x)                                   # up to norm5
        mask = (feats > 0).float()
        w = net.classifier.weight[0]
        h, wd = feats.shape[-2:]
        s = sigmoid_factor(net(x))[:, 0]
        alpha = (w[None, :, None, None] * mask / (h * wd)).mean((2, 3)) * s[:, None]
        expected = torch.relu((alpha[..., None, None] * feats.relu()).sum(1, keepdim=True))
    assert torch.allclose(early.grad_cams[-1], expected, rtol=1e-4, atol=1e-9)


def test_demo_leaves_the_parameters_untouched(net, x):
    before = [p.grad for p in net.parameters()]
    demo_maps(net, x)
    assert all(p.grad is None for p in net.parameters()) and all(b is None for b in before)
    assert all(p.requires_grad for p in net.parameters())


def test_multiclass_loop_accumulates_hooks_and_pairs_the_wrong_blocks(x):
    traces = trace_multiclass(textured_densenet(num_classes=3), x)
    assert [t.gradients for t in traces] == [4, 8, 12]
    assert traces[0].outcome == "ok"
    assert traces[0].pairs == (("block4", "block4"), ("block3", "block3"), ("block2", "block2"), ("block1", "block1"))
    assert traces[1].pairs[:2] == (("block4", "block4"), ("block4", "block3"))    # block-4 gradient, block-3 tensor
    assert traces[1].outcome.startswith("RuntimeError") and traces[2].outcome.startswith("RuntimeError")
    assert len(trace_multiclass(textured_densenet(num_classes=1), x)) == 1


def test_stored_tensor_is_overwritten_by_resnet_in_place_ops(x):
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None, num_classes=2).eval()
    images = torch.randn(2, 3, 64, 64)
    assert stored_vs_snapshot(resnet, "layer1.0.bn2", images) > 0.1       # out += identity; relu(inplace)
    assert stored_vs_snapshot(resnet, "layer1.0.conv2", images) == 0.0
    assert stored_vs_snapshot(textured_densenet(1), "features.norm5", x) == 0.0


def test_relu_cam_gap_checks_shapes(net, x):
    result = demo_maps(net, x)
    assert relu_cam_gap(result.grad_cams[-1], result.logits, result.cam) == result.gap()
    with pytest.raises(ValueError, match="block4"):
        relu_cam_gap(result.grad_cams[0], result.logits, result.cam)


def test_bad_arguments(net, x):
    with pytest.raises(ValueError, match="relu"):
        demo_maps(net, x, relu="sometimes")
    with pytest.raises(ValueError, match="hook_time"):
        demo_maps(net, x, hook_time="never")
    with pytest.raises(ValueError, match="trace_multiclass"):
        demo_maps(textured_densenet(num_classes=3), x)
    with pytest.raises(ValueError, match="model"):
        demo_maps(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)), x)
