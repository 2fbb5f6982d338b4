"""Agreement harness: our methods against independent implementations (pytorch-grad-cam, captum).

Same model, layer, class and image => the same map after min-max normalisation (Pearson r > 0.99),
or a documented formula difference. The peers are development dependencies, imported lazily.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from medxai_lib.explain import cam_family, gradients, perturbation
from medxai_lib.explain.cam import grad_cam, normalize, upsample


def _pgc(cls_name: str) -> Callable:
    def run(model: nn.Module, x: torch.Tensor, layer: str, target: int) -> np.ndarray:
        import pytorch_grad_cam as pgc
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        module = dict(model.named_modules())[layer]
        with getattr(pgc, cls_name)(model=model, target_layers=[module]) as peer:
            return peer(input_tensor=x, targets=[ClassifierOutputTarget(target)] * len(x))
    return run


def _captum(cls_name: str, **kwargs: object) -> Callable:
    def run(model: nn.Module, x: torch.Tensor, layer: str, target: int) -> np.ndarray:
        import captum.attr as ca
        if cls_name == "LayerGradCam":
            out = ca.LayerGradCam(model, dict(model.named_modules())[layer]).attribute(
                x, target=target, relu_attributions=True)
            out = upsample(out.detach(), x.shape[-2:])
        else:
            out = getattr(ca, cls_name)(model).attribute(x, target=target, **kwargs).detach().sum(1, keepdim=True)
        return normalize(out)[:, 0].numpy()
    return run


def _ours_cam(fn: Callable, **kwargs: object) -> Callable:
    def run(model: nn.Module, x: torch.Tensor, layer: str, target: int) -> torch.Tensor:
        return fn(model, x, layer, target, **kwargs)
    return run


def _ours_input(fn: Callable, **kwargs: object) -> Callable:
    def run(model: nn.Module, x: torch.Tensor, layer: str, target: int) -> torch.Tensor:
        return fn(model, x, target, **kwargs).sum(2)  # (B, 1, C, H, W) -> (B, 1, H, W)
    return run


# method, peer, relation, ours, theirs, layer kind ("mid" = a mid-network layer, "pooled" = features)
CASES = [
    ("grad_cam", "pytorch-grad-cam GradCAM", "same", _ours_cam(grad_cam), _pgc("GradCAM"), "mid"),
    ("grad_cam", "captum LayerGradCam(relu)", "same", _ours_cam(grad_cam), _captum("LayerGradCam"), "mid"),
    ("grad_cam_pp", "pytorch-grad-cam GradCAMPlusPlus", "same with eps=1e-6",
     _ours_cam(cam_family.grad_cam_pp, eps=1e-6), _pgc("GradCAMPlusPlus"), "mid"),
    ("xgrad_cam", "pytorch-grad-cam XGradCAM", "same", _ours_cam(cam_family.xgrad_cam), _pgc("XGradCAM"), "mid"),
    ("hires_cam", "pytorch-grad-cam HiResCAM", "same", _ours_cam(cam_family.hires_cam), _pgc("HiResCAM"), "mid"),
    ("layer_cam", "pytorch-grad-cam LayerCAM", "same", _ours_cam(cam_family.layer_cam), _pgc("LayerCAM"), "mid"),
    ("score_cam", "pytorch-grad-cam ScoreCAM", "same with channel softmax, align_corners",
     _ours_cam(cam_family.score_cam, channel_softmax=True, align_corners=True), _pgc("ScoreCAM"), "pooled"),
    ("ablation_cam", "pytorch-grad-cam AblationCAM", "same", _ours_cam(cam_family.ablation_cam), _pgc("AblationCAM"), "pooled"),
    ("eigen_cam", "pytorch-grad-cam EigenCAM", "peer ReLUs, SVD sign free", _ours_cam(cam_family.eigen_cam),
     _pgc("EigenCAM"), "mid"),
    ("saliency", "captum Saliency(abs)", "same", _ours_input(gradients.saliency), _captum("Saliency", abs=True), "-"),
    ("input_x_gradient", "captum InputXGradient", "same", _ours_input(gradients.input_x_gradient),
     _captum("InputXGradient"), "-"),
    ("guided_backprop", "captum GuidedBackprop", "same", _ours_input(gradients.guided_backprop),
     _captum("GuidedBackprop"), "-"),
    ("deconvnet", "captum Deconvolution", "same", _ours_input(gradients.deconvnet), _captum("Deconvolution"), "-"),
    ("occlusion", "captum Occlusion", "same", _ours_input(perturbation.occlusion, window=16, stride=8),
     _captum("Occlusion", sliding_window_shapes=(1, 16, 16), strides=(1, 8, 8), baselines=0.0,
             perturbations_per_eval=64), "-"),
]


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 and b.std() == 0:
        return 1.0 if np.allclose(a, b) else 0.0
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def peer_agreement(model: nn.Module, images: torch.Tensor, target: int = 0, mid_layer: str = "features.transition2",
                   pooled_layer: str = "features") -> "pandas.DataFrame":
    """One row per (method, peer): min and mean Pearson r over the images of the normalised maps at
    input resolution. Eigen-CAM is compared as max(r(relu(m)), r(relu(-m))) (the peer's convention)."""
    import pandas as pd
    rows = []
    size = images.shape[-2:]
    for method, peer, relation, ours_fn, theirs_fn, kind in CASES:
        layer = mid_layer if kind == "mid" else pooled_layer
        raw = ours_fn(model, images, layer, target).detach()
        theirs = np.asarray(theirs_fn(model, images, layer, target))
        variants = [raw.relu(), (-raw).relu()] if method == "eigen_cam" else [raw]
        corr = np.max([[_pearson(normalize(upsample(v, size))[b, 0].numpy(), theirs[b]) for b in range(len(images))]
                       for v in variants], axis=0)
        rows.append({"method": method, "peer": peer, "relation": relation, "min r": corr.min(), "mean r": corr.mean()})
    return pd.DataFrame(rows)
