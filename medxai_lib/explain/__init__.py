"""Explanations. The capture core lives in :mod:`.capture`; one module per method family."""
from medxai_lib.explain.cam import cam, cam_contribution, grad_cam, identity_gap, normalize, upsample
from medxai_lib.explain.capture import resolve_classes, resolve_layer

__all__ = ["cam", "cam_contribution", "identity_gap", "grad_cam", "normalize", "resolve_classes", "resolve_layer", "upsample"]
