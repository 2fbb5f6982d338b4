"""CAM (Zhou et al. 2016) and Grad-CAM (Selvaraju et al. 2017) on the shared capture core.

Both return raw maps ``(B, T, h, w)`` at the layer's resolution, T = number of target classes.
For a model whose logits are ``z_c = sum_k w_ck mean_ij A_kij + b_c`` (A = the tensor that is
average-pooled), ``dz_c / dA_kij = w_ck / (h w)``, hence the exact identity

    grad_cam(model, x, "features") * h * w == relu(cam(model, x))

which fails when Grad-CAM hooks a tensor *before* the last ReLU (e.g. DenseNet's ``norm5``).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medxai_lib.explain.capture import (ClassSpec, LayerSpec, check_images, explaining, forward_with_capture,
                                        gradients_on, resolve_classes, resolve_layer, resolve_layers)


def cam(model: nn.Module, images: torch.Tensor, classes: ClassSpec = None,
        features: LayerSpec = "features", classifier: LayerSpec = "classifier") -> torch.Tensor:
    """Class activation maps: FC weights . feature maps, no bias, no ReLU, not normalised/resized.

    Args:
        model: logits must be ``classifier(avgpool(features(x)))`` (checked on this batch).
        images: ``(B, C, H, W)``.
        classes: see :func:`medxai_lib.explain.capture.resolve_classes`.
        features, classifier: the submodules (or dotted names) playing those roles.
    Returns: ``(B, T, h, w)`` float tensor (signed).
    """
    check_images(model, images)
    feat_layer = resolve_layer(model, features)
    _, linear = resolve_layer(model, classifier)
    if not isinstance(linear, nn.Linear):
        raise ValueError(f"classifier: CAM needs a GAP + nn.Linear head; {classifier!r} is a "
                         f"{type(linear).__name__}. Use grad_cam for other models.")
    with explaining(model), torch.no_grad():
        logits, acts = forward_with_capture(model, images, [feat_layer])
        activation = acts[feat_layer[0]].detach()
        if activation.shape[1] != linear.in_features:
            raise ValueError(f"model: {feat_layer[0]!r} has {activation.shape[1]} channels but the classifier "
                             f"expects {linear.in_features}; CAM needs logits = classifier(avgpool(features(x)))")
        rebuilt = linear(activation.mean((2, 3)))
    if not torch.allclose(rebuilt, logits.detach(), rtol=1e-4, atol=1e-4 * (1 + logits.abs().max().item())):
        raise ValueError("model: its logits are not classifier(avgpool(features(x))) (max difference "
                         f"{(rebuilt - logits).abs().max().item():.3g}), so CAM does not explain them. "
                         "Use grad_cam, or a CAM-ready model (medxai_lib.models).")
    idx = resolve_classes(classes, logits)
    weights = linear.weight.detach()[idx]                      # (B, T, K)
    return torch.einsum("btk,bkhw->bthw", weights, activation)


Combine = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def gradient_maps(model: nn.Module, images: torch.Tensor, layer: LayerSpec | Sequence[LayerSpec],
                  classes: ClassSpec, combine: Combine,
                  score_fn: Callable[[torch.Tensor], torch.Tensor] | None = None
                  ) -> torch.Tensor | dict[str, torch.Tensor]:
    """The shared engine of the gradient CAM family.

    One forward pass; per target class one ``torch.autograd.grad`` w.r.t. the hooked activations
    only (shared by all layers); ``combine(activation (B, K, h, w), grad (B, K, h, w)) -> (B, h, w)``
    turns them into a map. Returns ``(B, T, h, w)``, or a dict name -> maps when ``layer`` is a list.
    Works under ``torch.no_grad()`` / ``torch.inference_mode()`` (gradients are switched on inside).
    """
    check_images(model, images)
    layers, single = resolve_layers(model, layer)
    with explaining(model), gradients_on(images) as images:
        logits, acts = forward_with_capture(model, images, layers)
        idx = resolve_classes(classes, logits)
        scores = logits if score_fn is None else score_fn(logits)
        if scores.shape != logits.shape:
            raise ValueError(f"score_fn: must keep the shape {tuple(logits.shape)}, got {tuple(scores.shape)}")
        activations = [acts[name] for name, _ in layers]
        per_layer: list[list[torch.Tensor]] = [[] for _ in layers]
        n_targets = idx.shape[1]
        for t in range(n_targets):
            target = scores.gather(1, idx[:, t:t + 1]).sum()  # images are independent in eval mode
            grads = torch.autograd.grad(target, activations, retain_graph=t < n_targets - 1, allow_unused=True)
            for maps, activation, grad in zip(per_layer, activations, grads):
                grad = torch.zeros_like(activation) if grad is None else grad  # layer without influence
                maps.append(combine(activation.detach(), grad.detach()))
    out = {name: torch.stack(maps, 1) for (name, _), maps in zip(layers, per_layer)}
    return next(iter(out.values())) if single else out


def _grad_cam_combine(activation: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    return torch.relu(torch.einsum("bk,bkhw->bhw", grad.mean((2, 3)), activation))


def grad_cam(model: nn.Module, images: torch.Tensor, layer: LayerSpec | Sequence[LayerSpec],
             classes: ClassSpec = None, score_fn: Callable[[torch.Tensor], torch.Tensor] | None = None
             ) -> torch.Tensor | dict[str, torch.Tensor]:
    """Grad-CAM: ``relu(sum_k mean_ij(dS_c/dA_kij) A_k)`` for every requested class and layer.

    One forward pass per call; one activation-only backward (``torch.autograd.grad``) per class,
    shared by all layers; no parameter gradients.

    Args:
        model: any classifier returning ``(B, K)`` scores.
        images: ``(B, C, H, W)``.
        layer: a module or dotted name, or a list of them.
        classes: None (all K), an int, a sequence of ints, ``"pred"``, or a ``(B,)``/``(B, T)`` tensor.
        score_fn: optional map applied to the logits before differentiation (e.g. ``torch.sigmoid``,
            as the seed demo does); class selection (``"pred"``) always uses the logits.
    Returns: ``(B, T, h, w)`` float tensor >= 0, or ``{layer name: maps}`` when ``layer`` is a list.
    """
    return gradient_maps(model, images, layer, classes, _grad_cam_combine, score_fn)


def _check_maps(maps: torch.Tensor, finite: bool = False) -> None:
    if not isinstance(maps, torch.Tensor) or maps.ndim != 4:
        shape = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
        raise ValueError(f"maps: expected a (B, T, h, w) tensor, got {shape}")
    if finite and not torch.isfinite(maps).all():
        raise ValueError("maps: contains NaN or infinite values; a map of non-finite values has no scale")


def upsample(maps: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bilinear resize ``(B, T, h, w)`` -> ``(B, T, H, W)`` (``size`` = H or (H, W))."""
    _check_maps(maps)
    size = (size, size) if isinstance(size, int) else tuple(size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"size: expected a positive int or (H, W), got {size!r}")
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)


def normalize(maps: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Min-max scale each ``(h, w)`` map of ``(B, T, h, w)`` to [0, 1]; a constant map becomes 0.
    Maps with NaN or infinite values are refused (they would come back as zeros)."""
    _check_maps(maps, finite=True)
    flat = maps.flatten(2)
    low = flat.min(-1, keepdim=True).values
    span = flat.max(-1, keepdim=True).values - low
    scaled = torch.where(span > eps, (flat - low) / span.clamp_min(eps), torch.zeros_like(flat))
    return scaled.view_as(maps)


def cam_contribution(maps: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """How much of each logit a region contributes, read off a raw CAM.

    Since ``logit_c - b_c = mean_ij CAM_c[i, j]``, a region contributes ``mean_ij CAM_c[i, j] r_ij``
    where ``r_ij`` is the share of cell (i, j) covered by the region (the mask average-pooled to the
    CAM grid). ``maps (B, T, h, w)`` raw CAM, ``regions (B, 1, H, W)`` -> ``(B, T)`` in logit units.
    """
    _check_maps(maps, finite=True)
    if regions.ndim != 4 or regions.shape[1] != 1 or regions.shape[0] != maps.shape[0]:
        raise ValueError(f"regions: expected (B, 1, H, W) with B = {maps.shape[0]}, got {tuple(regions.shape)}")
    cover = F.adaptive_avg_pool2d(regions.float().to(maps.device), maps.shape[-2:])
    return (maps * cover).mean((2, 3))


def identity_gap(model: nn.Module, images: torch.Tensor, layer: LayerSpec = "features", classes: ClassSpec = None
                 ) -> float:
    """``max |grad_cam(layer) * h * w - relu(cam)| / max |cam|``: ~1e-7 when ``layer`` is the tensor
    that is average-pooled into the classifier, large for a pre-ReLU layer such as ``norm5``."""
    raw = cam(model, images, classes)
    maps = grad_cam(model, images, layer, classes)
    if maps.shape != raw.shape:
        raise ValueError(f"layer: {layer!r} gives {tuple(maps.shape[-2:])} maps; CAM's grid is {tuple(raw.shape[-2:])}")
    h, w = maps.shape[-2:]
    return ((maps * h * w - raw.relu()).abs().max() / raw.abs().max().clamp_min(1e-12)).item()
