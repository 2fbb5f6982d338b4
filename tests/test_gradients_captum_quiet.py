"""The captum wrappers reach the notebooks without warnings (a cold run of 04 printed two per DeepLift call)."""
from __future__ import annotations

import warnings

import pytest
import torch

from medxai_lib.explain.gradients import deep_lift, gradient_shap, integrated_gradients
from medxai_lib.models import densenet_small


@pytest.mark.parametrize("method", [deep_lift, integrated_gradients, gradient_shap])
def test_captum_wrappers_emit_no_warning_and_leave_the_input_alone(method):
    torch.manual_seed(0)
    model = densenet_small(num_classes=1, in_channels=1).eval()
    images = torch.rand(2, 1, 32, 32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        maps = method(model, images, classes=0)
    assert [str(w.message) for w in caught] == []
    assert maps.shape == (2, 1, 1, 32, 32) and torch.isfinite(maps).all()
    assert not images.requires_grad                    # the caller's tensor is not switched to requiring grad
