"""The CAM family beyond Grad-CAM, all ``(model, images, layer, classes=None) -> (B, T, h, w)``.

Gradient-weighted variants (one forward, activation-only gradients, via
:func:`medxai_lib.explain.cam.gradient_maps`): Grad-CAM++, XGrad-CAM, HiRes-CAM, Layer-CAM.
Gradient-free variants: Score-CAM (masked input forwards, all classes from the same forwards),
Ablation-CAM (channels zeroed at the layer, the upstream computed once per image), Eigen-CAM
(first principal component of the activations; class-agnostic).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medxai_lib.models.inference import fast_forward
from medxai_lib.explain.batching import check_chunk_size, chunk_size_for
from medxai_lib.explain.cam import gradient_maps
from medxai_lib.explain.capture import (ClassSpec, LayerSpec, check_images, explaining, forward_with_capture,
                                        resolve_classes, resolve_layer)

# ---- gradient-weighted -------------------------------------------------------------------------


def _gradcam_pp_combine(activation: torch.Tensor, grad: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    # Chattopadhay et al. 2018, eq. 19 with the exponential-score closed form: the third derivative at
    # (i, j) times the sum of activations over all positions -> denominator 2 g^2 + (sum_ab A_ab) g^3
    # (pytorch-grad-cam's choice; torchcam and MONAI use sum_ab(A_ab g_ab^3) instead).
    g2, g3 = grad.pow(2), grad.pow(3)
    denom = 2 * g2 + activation.sum((2, 3), keepdim=True) * g3 + eps
    alpha = torch.where((grad != 0) & (denom != 0), g2 / torch.where(denom != 0, denom, torch.ones_like(denom)),
                        torch.zeros_like(grad))
    weights = (alpha * torch.relu(grad)).sum((2, 3))
    return torch.relu(torch.einsum("bk,bkhw->bhw", weights, activation))


def _xgrad_combine(activation: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    weights = (grad * activation).sum((2, 3)) / (activation.sum((2, 3)) + 1e-7)
    return torch.relu(torch.einsum("bk,bkhw->bhw", weights, activation))


def _hires_combine(activation: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    return torch.relu((grad * activation).sum(1))


def _layer_cam_combine(activation: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    return torch.relu((torch.relu(grad) * activation).sum(1))


def grad_cam_pp(model: nn.Module, images: torch.Tensor, layer: LayerSpec, classes: ClassSpec = None,
                eps: float = 0.0) -> torch.Tensor:
    """Grad-CAM++ (Chattopadhay et al. 2018). Denominator ``2g^2 + sum_ab(A_ab) g^3`` as in the paper's
    closed form and pytorch-grad-cam (torchcam/MONAI use ``sum_ab(A_ab g_ab^3)``). pytorch-grad-cam adds
    ``eps=1e-6`` to the denominator, which matters when gradients are small; ours is exact by default.
    ``(B, T, h, w)`` >= 0."""
    return gradient_maps(model, images, layer, classes, lambda a, g: _gradcam_pp_combine(a, g, eps))


def xgrad_cam(model: nn.Module, images: torch.Tensor, layer: LayerSpec, classes: ClassSpec = None) -> torch.Tensor:
    """XGrad-CAM (Fu et al. 2020): weights ``sum(g A) / sum(A)`` per channel. ``(B, T, h, w)`` >= 0."""
    return gradient_maps(model, images, layer, classes, _xgrad_combine)


def hires_cam(model: nn.Module, images: torch.Tensor, layer: LayerSpec, classes: ClassSpec = None) -> torch.Tensor:
    """HiRes-CAM (Draelos & Carin 2020): ``relu(sum_k g_k * A_k)``, no spatial averaging. ``(B, T, h, w)``."""
    return gradient_maps(model, images, layer, classes, _hires_combine)


def layer_cam(model: nn.Module, images: torch.Tensor, layer: LayerSpec, classes: ClassSpec = None) -> torch.Tensor:
    """Layer-CAM (Jiang et al. 2021): ``relu(sum_k relu(g_k) * A_k)``. ``(B, T, h, w)`` >= 0."""
    return gradient_maps(model, images, layer, classes, _layer_cam_combine)


# ---- gradient-free --------------------------------------------------------------------------------


def _capture_once(model: nn.Module, images: torch.Tensor, layer: LayerSpec, classes: ClassSpec
                  ) -> tuple[str, nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradient-free methods' shared start: check, one no-grad forward with the layer hooked.
    Returns ``(name, module, logits (B, K), targets (B, T), activation (B, C, h, w))``."""
    check_images(model, images)
    name, module = resolve_layer(model, layer)
    with explaining(model), torch.no_grad():
        logits, acts = forward_with_capture(model, images, [(name, module)])
    return name, module, logits, resolve_classes(classes, logits), acts[name].detach()


def score_cam(model: nn.Module, images: torch.Tensor, layer: LayerSpec, classes: ClassSpec = None,
              baseline: bool = False, softmax: bool = False, channel_softmax: bool = False,
              align_corners: bool = False, chunk_size: int | str = "auto") -> torch.Tensor:
    """Score-CAM (Wang et al. 2020): channel k's weight is the class score of the input masked by
    A_k (upsampled, min-max scaled to [0, 1]); ``map = relu(sum_k w_k A_k)``.

    All classes come from the same K masked forwards per image, run in chunks (``"auto"`` sizes them
    from free memory). ``softmax``: score = softmax probability (the paper) instead of the logit
    (pytorch-grad-cam). ``baseline``: subtract the score of the fully masked (all-zero) input (torchcam).
    ``channel_softmax``: softmax the scores over the K channels (pytorch-grad-cam's weighting);
    ``align_corners``: how the activations are upsampled into masks (pytorch-grad-cam: True).
    Returns ``(B, T, h, w)`` >= 0.
    """
    check_chunk_size(chunk_size)
    _, _, logits, idx, activation = _capture_once(model, images, layer, classes)
    with explaining(model), torch.no_grad():
        batch, channels = activation.shape[:2]
        masks = F.interpolate(activation, size=images.shape[-2:], mode="bilinear", align_corners=align_corners)
        low = masks.flatten(2).min(-1).values[..., None, None]
        high = masks.flatten(2).max(-1).values[..., None, None]
        masks = torch.where(high > low, (masks - low) / (high - low).clamp_min(1e-12), torch.zeros_like(masks))
        size = chunk_size_for(model, images, batch * channels, chunk_size)
        to_score = (lambda z: torch.softmax(z, 1)) if softmax else (lambda z: z)
        weights = torch.empty(batch, channels, logits.shape[1], device=images.device)
        flat = [(b, k) for b in range(batch) for k in range(channels)]
        with fast_forward(model) as run:
            for start in range(0, len(flat), size):
                part = flat[start:start + size]
                b_idx = torch.tensor([b for b, _ in part], device=images.device)
                k_idx = torch.tensor([k for _, k in part], device=images.device)
                masked = images[b_idx] * masks[b_idx, k_idx][:, None]
                weights[b_idx, k_idx] = to_score(run(masked))
        if baseline:
            weights = weights - to_score(model(torch.zeros_like(images)))[:, None, :]
        chosen = weights.gather(2, idx[:, None, :].expand(-1, channels, -1))      # (B, K, T)
        if channel_softmax:
            chosen = torch.softmax(chosen, 1)
        return torch.relu(torch.einsum("bkt,bkhw->bthw", chosen, activation))


def ablation_cam(model: nn.Module, images: torch.Tensor, layer: LayerSpec, classes: ClassSpec = None,
                 chunk_size: int | str = "auto") -> torch.Tensor:
    """Ablation-CAM (Desai & Ramaswamy 2020): ``w_k = (y_c - y_c^{k ablated}) / y_c`` where channel k
    of the layer's output is zeroed; ``map = relu(sum_k w_k A_k)``.

    The network up to the layer runs once per image: a forward hook swaps the layer's output for a
    batch of ablated copies, so only the part after the layer is repeated. The layer must lie on the
    model's main path (no skip connection may jump over it). Returns ``(B, T, h, w)`` >= 0.
    """
    check_chunk_size(chunk_size)
    name, module, logits, idx, activation = _capture_once(model, images, layer, classes)
    with explaining(model), torch.no_grad():
        batch, channels = activation.shape[:2]
        size = chunk_size_for(model, images, channels, chunk_size)
        ablated_scores = torch.empty(batch, channels, logits.shape[1], device=images.device)
        for b in range(batch):
            for start in range(0, channels, size):
                ks = torch.arange(start, min(start + size, channels), device=images.device)
                copies = activation[b:b + 1].repeat(len(ks), 1, 1, 1)
                copies[torch.arange(len(ks)), ks] = 0
                handle = module.register_forward_hook(lambda _m, _i, _o, c=copies: c)
                try:
                    ablated_scores[b, ks] = model(images[b:b + 1])
                except RuntimeError as exc:
                    raise ValueError(f"layer: {name!r} is not on the model's main path (a skip connection "
                                     f"crosses it), so Ablation-CAM cannot replace its output: {exc}") from exc
                finally:
                    handle.remove()
        original = logits.detach()[:, None, :]
        weights = (original - ablated_scores) / torch.where(original != 0, original, torch.ones_like(original))
        chosen = weights.gather(2, idx[:, None, :].expand(-1, channels, -1))
        return torch.relu(torch.einsum("bkt,bkhw->bthw", chosen, activation))


def eigen_cam(model: nn.Module, images: torch.Tensor, layer: LayerSpec, classes: ClassSpec = None) -> torch.Tensor:
    """Eigen-CAM (Muhammad & Yeasin 2020): projection of the activations on their first principal
    component (channels centred over positions). Class-agnostic: the same map for every target.
    The SVD's sign is fixed so that the map correlates positively with the channel-summed activation.
    Returns ``(B, T, h, w)`` (signed)."""
    _, _, _, idx, activation = _capture_once(model, images, layer, classes)
    with torch.no_grad():
        batch, channels, h, w = activation.shape
        rows = activation.flatten(2).transpose(1, 2)                     # (B, hw, K)
        centred = rows - rows.mean(1, keepdim=True)
        _, _, vh = torch.linalg.svd(centred, full_matrices=False)
        projection = (centred @ vh[:, 0, :, None])[..., 0]              # (B, hw)
        total = rows.sum(-1)
        sign = torch.sign(((projection - projection.mean(1, keepdim=True)) *
                           (total - total.mean(1, keepdim=True))).sum(1, keepdim=True))
        projection = projection * torch.where(sign == 0, torch.ones_like(sign), sign)
        return projection.view(batch, 1, h, w).expand(-1, idx.shape[1], -1, -1).clone()
