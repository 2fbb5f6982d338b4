"""The explanation registry: every method with its taxonomy tags, and one dispatcher.

The tags of :data:`METHODS` (and of the suite's other techniques, :func:`taxonomy_table` with
``include_other=True``) are typed by hand. They must follow from a few observable *facts* about each
method (:class:`MethodFacts`, listed in :data:`FACTS`) by these rules (:func:`expected_tags`), and
``tests/test_taxonomy.py`` checks every tag against them and checks the facts on the code itself
(a model-agnostic method runs on a bare callable, a model-specific one refuses it, and so on):

* **access**: ``"data only"`` if the method takes no model (it looks at the data); else ``"model-agnostic"``
  if it needs nothing but a function from inputs to outputs; else ``"model-specific"`` (it reads weights,
  gradients or activations, or is part of one architecture).
* **stage**: ``"pre-model"`` if it takes no model; ``"in-model"`` if the explanation is computed by the
  model's own forward pass (attention, a generated report); else ``"post-model"`` (post hoc).
* **scope**: ``"local"`` if it returns one explanation per input; else ``"global"`` (one for the model or
  the data set).
* **form**: ``"surrogate"`` if it fits a simpler, readable model to the black box's outputs; else
  ``"visualization"`` if its output is something to look at (a map over the input or a layer, an attention
  map, a 2-D embedding); else ``"neither"`` (scores per feature or unit, a text report).
* **attribution**: ``True`` if its output gives credit to input features or regions (a map over the input
  or a layer's positions, a score per input feature); ``False`` for attention, embeddings, units, rules
  and reports (seed 000's *non-attribution* methods).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

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
    form: str = "visualization"   # "visualization" (something to look at), "surrogate" (a simpler model) or "neither"
    attribution: bool = True      # assigns credit to input features or regions (vs attention, reports, rules)


OUTPUT_KINDS = ("input map", "layer map", "attention map", "embedding", "feature scores", "unit scores", "model",
                "text")
_VISUAL = {"input map", "layer map", "attention map", "embedding"}
_CREDIT = {"input map", "layer map", "feature scores"}


@dataclass(frozen=True)
class MethodFacts:
    """What a method observably does; its taxonomy tags follow from these by :func:`expected_tags`."""

    takes_model: bool        # needs a (trained) model at all; PCA and t-SNE only look at the data
    black_box: bool          # needs only a function inputs -> outputs (no weights, gradients, activations)
    in_forward_pass: bool    # the explanation is computed by the model's own forward pass
    per_input: bool          # one explanation per input (vs one for the model or data set)
    fits_surrogate: bool     # fits a simpler, readable model to the black box's outputs
    output: str              # one of OUTPUT_KINDS

    def __post_init__(self) -> None:
        if self.output not in OUTPUT_KINDS:
            raise ValueError(f"output: expected one of {OUTPUT_KINDS}, got {self.output!r}")


def expected_tags(facts: MethodFacts) -> dict[str, object]:
    """The tags the module docstring's rules give for ``facts``: ``{"access", "stage", "scope", "form",
    "attribution"}``."""
    return {
        "access": "data only" if not facts.takes_model else "model-agnostic" if facts.black_box else "model-specific",
        "stage": "pre-model" if not facts.takes_model else "in-model" if facts.in_forward_pass else "post-model",
        "scope": "local" if facts.per_input else "global",
        "form": "surrogate" if facts.fits_surrogate else "visualization" if facts.output in _VISUAL else "neither",
        "attribution": facts.output in _CREDIT,
    }


def _m(name: str, fn: Callable, family: str, needs_layer: bool, access: str, output: str, reference: str) -> MethodInfo:
    form = "surrogate" if family == "surrogate" else "visualization"
    return MethodInfo(name, fn, family, needs_layer, access, "local", "post-model", output, reference, form)


_LAYER, _INPUT = "layer map (B, T, h, w)", "input map (B, T, C|1, H, W)"
_SPEC, _AGN, _DATA = "model-specific", "model-agnostic", "data only"

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
    """Run ``method`` (a key of :data:`METHODS`) and return its native output (see ``MethodInfo.output``).

    A model-specific method needs ``model`` to be an ``nn.Module`` (a ``TypeError`` naming ``model``
    otherwise); a model-agnostic one takes any function from images to ``(B, K)`` scores."""
    if not isinstance(method, str):
        raise TypeError(f"method: expected one method name (a str), got {method!r}; "
                        f"call attribute once per method, valid methods: {', '.join(sorted(METHODS))}")
    if method not in METHODS:
        raise ValueError(f"method: unknown {method!r}; valid methods: {', '.join(sorted(METHODS))}")
    info = METHODS[method]
    if info.access == _SPEC and not isinstance(model, nn.Module):
        agnostic = ", ".join(sorted(n for n, m in METHODS.items() if m.access == _AGN))
        raise TypeError(f"model: method {method!r} is model-specific (it reads the model's layers, weights or "
                        f"gradients), so it needs a torch.nn.Module, got {type(model).__name__}; wrap a function "
                        f"in an nn.Module, or use a model-agnostic method ({agnostic})")
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
    """Techniques of the taxonomy that are not input-map attributions, with the code that implements them."""
    from sklearn.decomposition import PCA
    from sklearn.inspection import permutation_importance
    from sklearn.linear_model import LogisticRegression
    from sklearn.manifold import TSNE
    from sklearn.tree import DecisionTreeClassifier

    from medxai_lib.explain.ablation import ablation_effect
    from medxai_lib.explain.tabular import kernel_shap
    from medxai_lib.models.cnn import AttentionGatedCNN
    from medxai_lib.models.mdnet import MDNet
    rows = [
        MethodInfo("pca", PCA, "projection", False, _DATA, "global", "pre-model", "2-D embedding of the data",
                   "Pearson 1901", "visualization", False),
        MethodInfo("tsne", TSNE, "projection", False, _DATA, "global", "pre-model", "2-D embedding of the data",
                   "van der Maaten & Hinton 2008", "visualization", False),
        MethodInfo("attention_gate", AttentionGatedCNN.attend, "attention", False, _SPEC, "local", "in-model",
                   "attention map (B, 1, h, w)", "Schlemper et al. 2019", "visualization", False),
        MethodInfo("mdnet_report", MDNet.generate, "generated report", False, _SPEC, "local", "in-model",
                   "a diagnostic report (text) with word attention", "Zhang et al. 2017", "neither", False),
        MethodInfo("kernel_shap", kernel_shap, "Shapley values", False, _AGN, "local", "post-model",
                   "one score per feature (N, F)", "Lundberg & Lee 2017", "surrogate", True),
        MethodInfo("permutation_importance", permutation_importance, "feature importance", False, _AGN, "global",
                   "post-model", "one score per feature", "Breiman 2001", "neither", True),
        MethodInfo("distilled_tree", DecisionTreeClassifier, "surrogate", False, _AGN, "global", "post-model",
                   "a decision tree on cue features", "Craven & Shavlik 1996", "surrogate", False),
        MethodInfo("logistic_surrogate", LogisticRegression, "surrogate", False, _AGN, "global", "post-model",
                   "a logistic regression on cue features", "Ribeiro et al. 2016 (global variant)", "surrogate",
                   False),
        MethodInfo("unit_ablation", ablation_effect, "intervention", True, _SPEC, "global", "post-model",
                   "output change per unit", "Bau et al. 2020", "neither", False),
    ]
    return {m.name: m for m in rows}


def _facts_of_registered(info: MethodInfo) -> MethodFacts:
    black_box = info.family in ("perturbation", "surrogate")
    output = "layer map" if info.output.startswith("layer map") else "input map"
    return MethodFacts(True, black_box, False, True, info.family == "surrogate", output)


#: Facts per method (see :class:`MethodFacts`): (takes_model, black_box, in_forward_pass, per_input,
#: fits_surrogate, output). Registered attribution methods take theirs from their family and output shape.
FACTS: dict[str, MethodFacts] = {name: _facts_of_registered(info) for name, info in METHODS.items()} | {
    "pca": MethodFacts(False, False, False, False, False, "embedding"),
    "tsne": MethodFacts(False, False, False, False, False, "embedding"),
    "attention_gate": MethodFacts(True, False, True, True, False, "attention map"),
    "mdnet_report": MethodFacts(True, False, True, True, False, "text"),
    "kernel_shap": MethodFacts(True, True, False, True, True, "feature scores"),
    "permutation_importance": MethodFacts(True, True, False, False, False, "feature scores"),
    "distilled_tree": MethodFacts(True, True, False, False, True, "model"),
    "logistic_surrogate": MethodFacts(True, True, False, False, True, "model"),
    "unit_ablation": MethodFacts(True, False, False, False, False, "unit scores"),
}


def tag_violations(table: "pandas.DataFrame | None" = None) -> list[str]:
    """Every tag of ``table`` (default: :func:`taxonomy_table` with the other techniques) that differs from
    what the rules give for the method's :data:`FACTS`, as ``"method: axis is X, rules say Y"``."""
    table = taxonomy_table(include_other=True) if table is None else table
    bad = []
    for name, row in table.iterrows():
        if name not in FACTS:
            bad.append(f"{name}: no facts recorded in FACTS")
            continue
        for axis, expected in expected_tags(FACTS[name]).items():
            if row[axis] != expected:
                bad.append(f"{name}: {axis} is {row[axis]!r}, rules say {expected!r}")
    return bad


def taxonomy_table(include_other: bool = False) -> "pandas.DataFrame":
    """The registry as a table: one row per method, one column per taxonomy axis. ``include_other``
    adds the suite's other techniques (projections, attention, MDNet's reports, KernelSHAP, permutation
    importance, surrogates, unit ablation). Tags follow the rules in the module docstring."""
    import pandas as pd
    methods = dict(METHODS) | (_other_techniques() if include_other else {})
    rows = [{"method": m.name, "family": m.family, "access": m.access, "scope": m.scope, "stage": m.stage,
             "form": m.form, "attribution": m.attribution, "needs layer": m.needs_layer, "output": m.output,
             "reference": m.reference} for m in methods.values()]
    return pd.DataFrame(rows).set_index("method")
