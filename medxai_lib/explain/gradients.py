"""Gradient attributions in input space: ``(model, images, classes=None) -> (B, T, C, H, W)``.

Saliency, input x gradient, SmoothGrad, guided backprop and the Zeiler-Fergus deconvnet are written
here (they are the lesson: what each does to the backward pass); Integrated Gradients, DeepLift and
GradientShap are thin wrappers over captum.
"""
from __future__ import annotations

import warnings

from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medxai_lib.explain.cam import grad_cam
from medxai_lib.explain.capture import (ClassSpec, LayerSpec, check_images, check_scores, explaining, gradients_on,
                                        resolve_classes)


def input_gradients(model: nn.Module, images: torch.Tensor, classes: ClassSpec = None) -> tuple[torch.Tensor, torch.Tensor]:
    """d(score_c)/d(input) for every target class from ONE forward pass.
    Returns ``(grads (B, T, C, H, W), targets (B, T))``."""
    check_images(model, images)
    with explaining(model), gradients_on(images) as images:
        x = images.detach().requires_grad_(True)
        logits = check_scores(model(x), len(images))
        idx = resolve_classes(classes, logits)
        grads = []
        for t in range(idx.shape[1]):
            (g,) = torch.autograd.grad(logits.gather(1, idx[:, t:t + 1]).sum(), x, retain_graph=t < idx.shape[1] - 1)
            grads.append(g)
    return torch.stack(grads, 1), idx


def saliency(model: nn.Module, images: torch.Tensor, classes: ClassSpec = None) -> torch.Tensor:
    """Simonyan et al. 2014: ``|d score_c / d x|``. ``(B, T, C, H, W)`` >= 0."""
    return input_gradients(model, images, classes)[0].abs()


def input_x_gradient(model: nn.Module, images: torch.Tensor, classes: ClassSpec = None) -> torch.Tensor:
    """Shrikumar et al. 2016: ``x * d score_c / d x`` (signed). ``(B, T, C, H, W)``."""
    return input_gradients(model, images, classes)[0] * images.detach()[:, None]


def smooth_grad(model: nn.Module, images: torch.Tensor, classes: ClassSpec = None, n_samples: int = 16,
                noise_level: float = 0.15, seed: int = 0) -> torch.Tensor:
    """Smilkov et al. 2017: mean of ``|gradient|`` over ``n_samples`` noisy copies (Gaussian noise,
    std = ``noise_level`` x (max - min) of each image), all copies in one batched forward.
    ``(B, T, C, H, W)`` >= 0."""
    check_images(model, images)
    if not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples: expected a positive int, got {n_samples!r}")
    with torch.no_grad(), explaining(model):
        idx = resolve_classes(classes, check_scores(model(images), len(images)))  # "pred" is decided on the clean images
    span = (images.flatten(1).amax(1) - images.flatten(1).amin(1)).view(-1, 1, 1, 1)
    generator = torch.Generator(device=images.device).manual_seed(seed)
    noise = torch.randn((n_samples, *images.shape), generator=generator, device=images.device)
    noisy = (images[None] + noise * noise_level * span[None]).flatten(0, 1)       # (S*B, C, H, W)
    grads, _ = input_gradients(model, noisy, idx.repeat(n_samples, 1))
    return grads.abs().view(n_samples, *images.shape[:1], *grads.shape[1:]).mean(0)


@contextmanager
def relu_backward_rule(model: nn.Module, rule: str) -> Iterator[None]:
    """Temporarily change how every ``nn.ReLU`` passes gradients back.

    ``"guided"`` (Springenberg et al. 2015): the usual mask (input > 0) AND positive gradients only.
    ``"deconvnet"`` (Zeiler & Fergus 2014): ignore the forward mask, keep positive gradients only
    (the ReLU is applied to the backward signal); max-pool switches and transposed convolutions are
    exactly what autograd already does for pooling and convolution.
    """
    if rule not in ("guided", "deconvnet"):
        raise ValueError(f"rule: expected 'guided' or 'deconvnet', got {rule!r}")
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ValueError("model: has no nn.ReLU modules; guided backprop / deconvnet need them as modules")

    def hook(_module: nn.Module, grad_input: tuple, grad_output: tuple) -> tuple:
        source = grad_input[0] if rule == "guided" else grad_output[0]
        return (torch.relu(source),)

    handles = [m.register_full_backward_hook(hook) for m in relus]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def out_of_place_relus(model: nn.Module) -> Iterator[None]:
    """Temporarily set ``inplace=False`` on every ``nn.ReLU`` (a full backward hook cannot sit on an
    in-place op, as in torchvision's models); each module's own flag is restored on exit."""
    inplace = [m for m in model.modules() if isinstance(m, nn.ReLU) and m.inplace]
    for module in inplace:
        module.inplace = False
    try:
        yield
    finally:
        for module in inplace:
            module.inplace = True


def _modified_backprop(model: nn.Module, images: torch.Tensor, classes: ClassSpec, rule: str) -> torch.Tensor:
    check_images(model, images)
    with out_of_place_relus(model), relu_backward_rule(model, rule):
        return input_gradients(model, images, classes)[0]


def guided_backprop(model: nn.Module, images: torch.Tensor, classes: ClassSpec = None) -> torch.Tensor:
    """Guided backpropagation (signed). ``(B, T, C, H, W)``. In-place ``nn.ReLU`` modules (torchvision)
    are switched out of place for the call and restored; functional ReLUs are not modified."""
    return _modified_backprop(model, images, classes, "guided")


def deconvnet(model: nn.Module, images: torch.Tensor, classes: ClassSpec = None) -> torch.Tensor:
    """Zeiler-Fergus deconvnet projection of the class score (signed). ``(B, T, C, H, W)``."""
    return _modified_backprop(model, images, classes, "deconvnet")


def guided_grad_cam(model: nn.Module, images: torch.Tensor, layer: LayerSpec, classes: ClassSpec = None) -> torch.Tensor:
    """Selvaraju et al. 2017: guided backprop x Grad-CAM upsampled to the input. ``(B, T, C, H, W)``."""
    guided = guided_backprop(model, images, classes)
    coarse = grad_cam(model, images, layer, classes)
    fine = F.interpolate(coarse, size=images.shape[-2:], mode="bilinear", align_corners=False)
    return guided * fine[:, :, None]


def _captum_per_class(method: Callable, model: nn.Module, images: torch.Tensor, classes: ClassSpec,
                      **kwargs) -> torch.Tensor:
    check_images(model, images)
    with explaining(model), gradients_on(images) as images:
        with torch.no_grad():
            idx = resolve_classes(classes, check_scores(model(images), len(images)))
        explainer = method(model)
        inputs = images.detach().requires_grad_(True)     # captum warns (and sets it itself) otherwise
        with warnings.catch_warnings():                   # DeepLift's notice that it hooks the ReLUs (removed after)
            warnings.filterwarnings("ignore", message="Setting forward, backward hooks", category=UserWarning)
            maps = [explainer.attribute(inputs, target=idx[:, t].tolist(), **kwargs).detach() for t in range(idx.shape[1])]
    return torch.stack(maps, 1)


def integrated_gradients(model: nn.Module, images: torch.Tensor, classes: ClassSpec = None, n_steps: int = 32,
                         baselines: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Integrated Gradients (Sundararajan et al. 2017) via captum. ``(B, T, C, H, W)``."""
    from captum.attr import IntegratedGradients
    return _captum_per_class(IntegratedGradients, model, images, classes, n_steps=n_steps, baselines=baselines,
                             internal_batch_size=max(len(images) * n_steps // 4, 1))


def deep_lift(model: nn.Module, images: torch.Tensor, classes: ClassSpec = None) -> torch.Tensor:
    """DeepLift (Shrikumar et al. 2017) via captum, zero baseline. ``(B, T, C, H, W)``."""
    from captum.attr import DeepLift
    return _captum_per_class(DeepLift, model, images, classes)


def gradient_shap(model: nn.Module, images: torch.Tensor, classes: ClassSpec = None, n_samples: int = 16,
                  seed: int = 0) -> torch.Tensor:
    """GradientShap (Lundberg & Lee 2017) via captum, baselines = zeros and the batch mean. ``(B, T, C, H, W)``.

    captum draws its noise from torch's and numpy's global generators: both are seeded with ``seed`` for
    the call and put back afterwards (``torch.random.fork_rng``, ``numpy.random.get_state``), so the
    result depends on ``seed`` only and the caller's random state is left as it was."""
    from captum.attr import GradientShap
    check_images(model, images)
    devices = [images.device] if images.device.type == "cuda" else []
    numpy_state = np.random.get_state()
    try:
        np.random.seed(seed)
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            baselines = torch.stack([torch.zeros_like(images[0]), images.mean(0)])
            return _captum_per_class(GradientShap, model, images, classes, baselines=baselines, n_samples=n_samples)
    finally:
        np.random.set_state(numpy_state)
