"""Agreement between two sets of maps (peer cross-checks, sanity checks)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def pearson_per_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each pair of maps; ``(B, T, h, w)`` x ``(B, T, H, W)`` -> ``(B, T)``.

    ``b`` is resized to ``a``'s grid if needed. Two constant maps correlate 1 if equal, else 0.
    """
    if a.ndim != 4 or b.ndim != 4 or a.shape[:2] != b.shape[:2]:
        raise ValueError(f"a, b: expected (B, T, h, w) maps with equal B and T, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[-2:] != b.shape[-2:]:
        b = F.interpolate(b.float(), size=a.shape[-2:], mode="bilinear", align_corners=False)
    x = a.flatten(2).double()
    y = b.flatten(2).double()
    x, y = x - x.mean(-1, keepdim=True), y - y.mean(-1, keepdim=True)
    denom = x.norm(dim=-1) * y.norm(dim=-1)
    both_flat = (x.norm(dim=-1) == 0) & (y.norm(dim=-1) == 0)
    corr = torch.where(denom > 0, (x * y).sum(-1) / denom.clamp_min(1e-300), torch.zeros_like(denom))
    equal = (a.flatten(2).double() - b.flatten(2).double()).abs().amax(-1) == 0
    return torch.where(both_flat & equal, torch.ones_like(corr), corr).float()
