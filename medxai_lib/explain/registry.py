"""The explanation registry: every method with its taxonomy tags, and one dispatcher.

The taxonomy notebook renders its table from :data:`METHODS`, so the table cannot drift from the code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from medxai_lib.explain import cam_family, gradients, perturbation
from medxai_lib.explain.cam import cam, grad_cam


@dataclass(frozen=True)
class MethodInfo:
    """A method and where it sits in the taxonomy (seed 000)."""

    name: str
    fn: Callable[..., torch.Tensor]
    family: str            # "CAM", "gradient", "perturbation", "surrogate"
    needs_layer: bool
    access: str            # "model-specific" (needs internals/gradients) or "model-agnostic" (any callable)
    scope: str             # "local" (one input) or "global"
    stage: str             # "post-model" for every post-hoc method here
    output: str            # "layer map (B, T, h, w)" or "input map (B, T, C|1, H, W)"
    reference: str
    form: str = "visualization"   # "visualization" (a map to look at) or "surrogate" (a simpler model)
    attribution: bool = True      # assigns credit to input regions (vs attention, reports, examples)


def _m(name: str, fn: Callable, family: str, needs_layer: bool, access: str, output: str, reference: str) -> MethodInfo:
    form = "surrogate" if family == "surrogate" else "visualization"
    return MethodInfo(name, fn, family, needs_layer, access, "local", "post-model", output, reference, form)


_LAYER, _INPUT = "layer map (B, T, h, w)", "input map (B, T, C|1, H, W)"
_SPEC, _AGN = "model-specific", "model-agnostic"

METHODS: dict[str, MethodInfo] = {m.name: m for m in [
    _m("cam", cam, "CAM", False, _SPEC, _LAYER, "Zhou et al. 2016"),
    _m("grad_cam", grad_cam, "CAM", True, _SPEC, _LAYER, "Selvaraju et al. 2017"),
    _m("grad_cam_pp", cam_family.grad_cam_pp, "CAM", True, _SPEC, _LAYER, "Chattopadhay et al. 2018"),
    _m("xgrad_cam", cam_family.xgrad_cam, "CAM", True, _SPEC, _LAYER, "Fu et al. 2020"),
    _m("hires_cam", cam_family.hires_cam, "CAM", True, _SPEC, _LAYER, "Draelos & Carin 2020"),
    _m("layer_cam", cam_family.layer_cam, "CAM", True, _SPEC, _LAYER, "Jiang et al. 2021"),
    _m("score_cam", cam_family.score_cam, "CAM", True, _SPEC, _LAYER, "Wang et al. 2020"),
    _m("ablation_cam", cam_family.ablation_cam, "CAM", True, _SPEC, _LAYER, "Desai & Ramaswamy 2020"),
    _m("eigen_cam", cam_family.eigen_cam, "CAM", True, _SPEC, _LAYER, "Muhammad & Yeasin 2020"),
    _m("saliency", gradients.saliency, "gradient", False, _SPEC, _INPUT, "Simonyan et al. 2014"),
    _m("input_x_gradient", gradients.input_x_gradient, "gradient", False, _SPEC, _INPUT, "Shrikumar et al. 2016"),
    _m("smooth_grad", gradients.smooth_grad, "gradient", False, _SPEC, _INPUT, "Smilkov et al. 2017"),
    _m("integrated_gradients", gradients.integrated_gradients, "gradient", False, _SPEC, _INPUT, "Sundararajan et al. 2017"),
    _m("deep_lift", gradients.deep_lift, "gradient", False, _SPEC, _INPUT, "Shrikumar et al. 2017"),
    _m("gradient_shap", gradients.gradient_shap, "gradient", False, _SPEC, _INPUT, "Lundberg & Lee 2017"),
    _m("guided_backprop", gradients.guided_backprop, "gradient", False, _SPEC, _INPUT, "Springenberg et al. 2015"),
    _m("deconvnet", gradients.deconvnet, "gradient", False, _SPEC, _INPUT, "Zeiler & Fergus 2014"),
    _m("guided_grad_cam", gradients.guided_grad_cam, "gradient", True, _SPEC, _INPUT, "Selvaraju et al. 2017"),
    _m("occlusion", perturbation.occlusion, "perturbation", False, _AGN, _INPUT, "Zeiler & Fergus 2014"),
    _m("rise", perturbation.rise, "perturbation", False, _AGN, _INPUT, "Petsiuk et al. 2018"),
    _m("lime", perturbation.lime, "surrogate", False, _AGN, _INPUT, "Ribeiro et al. 2016"),
]}


def attribute(model: Any, images: torch.Tensor, method: str, layer: Any = None, classes: Any = None,
              **kwargs: Any) -> torch.Tensor:
    """Run ``method`` (a key of :data:`METHODS`) and return its native output (see ``MethodInfo.output``)."""
    if method not in METHODS:
        raise ValueError(f"method: unknown {method!r}; valid methods: {', '.join(sorted(METHODS))}")
    info = METHODS[method]
    if info.needs_layer:
        if layer is None:
            raise ValueError(f"layer: method {method!r} needs a layer (a module or dotted name, e.g. 'features')")
        return info.fn(model, images, layer, classes, **kwargs)
    if layer is not None and method != "cam":
        raise ValueError(f"layer: method {method!r} works on the input and takes no layer (got {layer!r})")
    return info.fn(model, images, classes, **kwargs)


def as_heatmap(attribution: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Any method's output as ``(B, T, H, W)``: layer maps are upsampled bilinearly; input maps are
    summed over channels (signed methods keep their sign)."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    if attribution.ndim == 5:
        attribution = attribution.sum(2)
    if attribution.ndim != 4:
        raise ValueError(f"attribution: expected (B, T, h, w) or (B, T, C, H, W), got {tuple(attribution.shape)}")
    if attribution.shape[-2:] != size:
        attribution = F.interpolate(attribution.float(), size=size, mode="bilinear", align_corners=False)
    return attribution


def _other_techniques() -> dict[str, MethodInfo]:
    """Techniques of the taxonomy that are not input attributions, with the code that implements them."""
    from sklearn.decomposition import PCA
    from sklearn.inspection import permutation_importance
    from sklearn.manifold import TSNE
    from sklearn.tree import DecisionTreeClassifier

    from medxai_lib.explain.ablation import ablation_effect
    from medxai_lib.models.cnn import AttentionGatedCNN
    rows = [
        MethodInfo("pca", PCA, "projection", False, _AGN, "global", "pre-model", "2-D embedding", "Pearson 1901",
                   "visualization", False),
        MethodInfo("tsne", TSNE, "projection", False, _AGN, "global", "pre-model", "2-D embedding",
                   "van der Maaten & Hinton 2008", "visualization", False),
        MethodInfo("attention_gate", AttentionGatedCNN.attend, "attention", False, _SPEC, "local", "in-model",
                   "attention map (B, 1, h, w)", "Schlemper et al. 2019", "visualization", False),
        MethodInfo("permutation_importance", permutation_importance, "feature importance", False, _AGN, "global",
                   "post-model", "one score per feature", "Breiman 2001", "visualization", True),
        MethodInfo("distilled_tree", DecisionTreeClassifier, "surrogate", False, _AGN, "global", "post-model",
                   "a decision tree on cue features", "Craven & Shavlik 1996", "surrogate", False),
        MethodInfo("unit_ablation", ablation_effect, "intervention", True, _SPEC, "global", "post-model",
                   "output change per unit", "Bau et al. 2020", "visualization", False),
    ]
    return {m.name: m for m in rows}


def taxonomy_table(include_other: bool = False) -> "pandas.DataFrame":
    """The registry as a table: one row per method, one column per taxonomy axis. ``include_other``
    adds the non-attribution techniques of the suite (projections, attention, surrogates, ablation)."""
    import pandas as pd
    methods = dict(METHODS) | (_other_techniques() if include_other else {})
    rows = [{"method": m.name, "family": m.family, "access": m.access, "scope": m.scope, "stage": m.stage,
             "form": m.form, "attribution": m.attribution, "needs layer": m.needs_layer, "output": m.output,
             "reference": m.reference} for m in methods.values()]
    return pd.DataFrame(rows).set_index("method")
