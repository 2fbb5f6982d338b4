"""Explanations. The capture core lives in :mod:`.capture`; one module per method family;
:data:`METHODS` / :func:`attribute` in :mod:`.registry` tie them together."""
from medxai_lib.explain.cam import cam, cam_contribution, grad_cam, identity_gap, normalize, upsample
from medxai_lib.explain.cam_family import (ablation_cam, eigen_cam, grad_cam_pp, hires_cam, layer_cam, score_cam,
                                           xgrad_cam)
from medxai_lib.explain.capture import resolve_classes, resolve_layer
from medxai_lib.explain.gradients import (deconvnet, deep_lift, gradient_shap, guided_backprop, guided_grad_cam,
                                          input_x_gradient, integrated_gradients, saliency, smooth_grad)
from medxai_lib.explain.perturbation import lime, occlusion, rise
from medxai_lib.explain.registry import METHODS, MethodInfo, as_heatmap, attribute, taxonomy_table

__all__ = ["METHODS", "MethodInfo", "ablation_cam", "as_heatmap", "attribute", "cam", "cam_contribution",
           "deconvnet", "deep_lift", "eigen_cam", "grad_cam", "grad_cam_pp", "gradient_shap", "guided_backprop",
           "guided_grad_cam", "hires_cam", "identity_gap", "input_x_gradient", "integrated_gradients", "layer_cam",
           "lime", "normalize", "occlusion", "resolve_classes", "resolve_layer", "rise", "saliency", "score_cam",
           "smooth_grad", "taxonomy_table", "upsample", "xgrad_cam"]
