"""Explanations compute no parameter gradients (issue 21).

Inside the forward pass of every explanation no parameter requires grad (seen by a forward hook);
after the call each parameter's own flag is back (a model with frozen and trainable parameters),
also when the call raises; and the results equal those computed with the parameters left as they
were (the code before the fix), within float tolerance, for every registered method.
"""
import contextlib

import pytest
import torch

import medxai_lib.explain.capture as capture
from medxai_lib.evaluate.studies.dissection import layer_activations
from medxai_lib.evaluate.metrics.faithfulness import deletion_insertion
from medxai_lib.explain import METHODS, attribute, grad_cam
from medxai_lib.explain.ablation import ablation_effect
from medxai_lib.explain.activation_network import ActivationNetwork
from medxai_lib.explain.capture import explaining, frozen_parameters
from medxai_lib.explain.seed_demo import demo_maps
from medxai_lib.models.detector import DRDetector
from tests.helpers import phantom_images, textured_densenet

FAST = {"lime": {"n_samples": 16, "n_segments": 8}, "rise": {"n_masks": 16}, "occlusion": {"window": 16, "stride": 16},
        "smooth_grad": {"n_samples": 2}, "integrated_gradients": {"n_steps": 4}, "gradient_shap": {"n_samples": 2},
        "score_cam": {"chunk_size": 64}, "ablation_cam": {"chunk_size": 64}}


def _mixed(model: torch.nn.Module) -> dict[str, bool]:
    """Freeze every other parameter (the user's choice); returns the flags by name."""
    for i, p in enumerate(model.parameters()):
        p.requires_grad_(i % 2 == 0)
    return {n: p.requires_grad for n, p in model.named_parameters()}


@contextlib.contextmanager
def _watch(model: torch.nn.Module):
    """Records, at every forward call of the model and its submodules, whether any parameter requires grad."""
    seen: list[bool] = []
    hook = lambda *_: seen.append(any(p.requires_grad for p in model.parameters()))  # noqa: E731
    handles = [m.register_forward_pre_hook(hook) for m in model.modules()]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def _run(name: str, model, x):
    layer = "features.denseblock2" if METHODS[name].needs_layer else None
    return attribute(model, x, name, layer=layer, classes=1, **FAST.get(name, {}))


@pytest.fixture(scope="module")
def setting():
    return textured_densenet(num_classes=3), phantom_images(2, size=48)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_no_parameter_requires_grad_inside_any_registered_method(setting, name):
    model, x = setting
    flags = _mixed(model)
    with _watch(model) as seen:
        _run(name, model, x)
    assert seen, "the hook saw no forward pass"
    assert not any(seen), f"{name}: a parameter required grad during the forward pass"
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags


@pytest.mark.parametrize("name", sorted(METHODS))
def test_results_equal_those_with_the_parameters_left_trainable(setting, name, monkeypatch):
    model, x = setting
    _mixed(model)
    fixed = _run(name, model, x)
    monkeypatch.setattr(capture, "frozen_parameters", lambda m: contextlib.nullcontext(m))
    with _watch(model) as seen:
        before = _run(name, model, x)
    assert any(seen), "the monkeypatched run should be the old behaviour (parameters trainable)"
    torch.testing.assert_close(fixed, before, rtol=1e-5, atol=1e-6)


def test_flags_are_restored_when_the_call_raises(setting):
    model, x = setting
    flags = _mixed(model)
    with _watch(model) as seen, pytest.raises(ValueError, match=r"layer: 'classifier' must output a \(B, K, h, w\)"):
        grad_cam(model, x, "classifier")            # the capture hook raises inside the forward pass
    assert seen and not any(seen)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    with pytest.raises(RuntimeError, match="boom"), frozen_parameters(model):
        raise RuntimeError("boom")
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags


def test_explaining_nests_and_leaves_plain_callables_alone(setting):
    model, _ = setting
    flags = _mixed(model)
    with explaining(model):
        with explaining(model):
            assert not any(p.requires_grad for p in model.parameters())
        assert not any(p.requires_grad for p in model.parameters()) and not model.training
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    fn = lambda z: z  # noqa: E731
    with explaining(fn) as same:
        assert same is fn


def test_the_other_gradient_and_forward_users_freeze_too(setting):
    """The seed demo, the grade-weighted deconvnet, deletion/insertion, unit ablation, dissection."""
    model, x = setting
    flags = _mixed(model)
    maps = torch.rand(len(x), *x.shape[-2:])
    for call in (lambda: deletion_insertion(model, x, maps, torch.tensor([0, 1]), n_steps=2),
                 lambda: ablation_effect(model, x, "features.denseblock2", [0, 1], target=1),
                 lambda: layer_activations(model, x, "features.denseblock2")):
        with _watch(model) as seen:
            call()
        assert seen and not any(seen)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    one = textured_densenet(num_classes=1)
    one_flags = _mixed(one)
    with _watch(one) as seen:
        demo_maps(one, x)
    assert seen and not any(seen) and {n: p.requires_grad for n, p in one.named_parameters()} == one_flags
    detector = DRDetector(width=4, dense=8)
    det_flags = _mixed(detector)
    with _watch(detector) as seen:
        ActivationNetwork(detector).project(torch.rand(1, 3, 64, 64))
    assert seen and not any(seen) and {n: p.requires_grad for n, p in detector.named_parameters()} == det_flags
