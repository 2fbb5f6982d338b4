"""Model-agnostic explanations of tabular models (any ``predict_proba``-like callable)."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch


def kernel_shap(predict_proba: Callable[[np.ndarray], np.ndarray], X: np.ndarray, background: np.ndarray,
                target: int = 1, n_samples: int = 200, seed: int = 0) -> np.ndarray:
    """KernelSHAP (Lundberg & Lee 2017) via captum for any callable mapping ``(N, F)`` arrays to ``(N, K)``
    probabilities, e.g. a fitted scikit-learn model's ``predict_proba``. ``background (F,)`` is the
    reference input (e.g. the training mean). Returns ``(N, F)`` attributions that sum (approximately)
    to ``f(x) - f(background)`` for the ``target`` column."""
    from captum.attr import KernelShap
    X = np.asarray(X, dtype=np.float64)
    background = np.asarray(background, dtype=np.float64).reshape(1, -1)
    if X.ndim != 2 or background.shape[1] != X.shape[1]:
        raise ValueError(f"X, background: expected (N, F) and (F,), got {X.shape} and {background.shape}")

    def forward(inputs: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(predict_proba(inputs.detach().cpu().numpy()), dtype=torch.float64)

    torch.manual_seed(seed)
    explainer = KernelShap(forward)
    out = [explainer.attribute(torch.as_tensor(row[None]), baselines=torch.as_tensor(background), target=target,
                               n_samples=n_samples).numpy()[0] for row in X]
    return np.stack(out)
