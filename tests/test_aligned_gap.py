"""evaluate.metrics.sanity.aligned_gap: a scale-free disagreement between two sets of maps."""
from __future__ import annotations

import pytest
import torch

from medxai_lib.evaluate.metrics.sanity import aligned_gap


def test_equal_up_to_a_positive_scale_is_zero_and_the_old_ratio_is_not():
    torch.manual_seed(0)
    a = torch.rand(4, 6, 6)
    assert aligned_gap(a, 100 * a) < 1e-6         # float32 rounding of 100 x a
    assert ((a - 100 * a).abs().max() / a.abs().max()).item() > 90    # the scale-dependent gap it replaces


def test_hand_computed_cases():
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    # row 1: orthogonal -> s = 0 -> gap 1; row 2: s = 1 -> residual (0, 1), |a| = sqrt 2 -> 1 / sqrt 2
    assert aligned_gap(a[:1], b[:1]) == pytest.approx(1.0)
    assert aligned_gap(a[1:], b[1:]) == pytest.approx(2 ** -0.5)
    assert aligned_gap(a, b) == pytest.approx(1.0)                       # the largest over maps
    assert aligned_gap(a, -a) == pytest.approx(1.0)                      # an opposite map does not agree
    assert aligned_gap(torch.zeros(1, 3), torch.zeros(1, 3)) == 0.0
    assert aligned_gap(torch.zeros(1, 3), torch.ones(1, 3)) == 1.0


def test_shapes_are_checked_by_name():
    with pytest.raises(ValueError, match="a, b"):
        aligned_gap(torch.zeros(2, 3), torch.zeros(2, 4))


def test_the_median_reduction_is_not_dominated_by_one_zero_map():
    a = torch.rand(5, 4, 4) + 0.1
    b = a.clone()
    b[1] = b[1] + 0.5 * torch.rand(4, 4)             # one map a little different
    a[0] = 0.0                                        # one map of a is zero where b's is not: gap 1 there
    assert aligned_gap(a, b) == 1.0                   # the largest over maps (an identity must hold on every map)
    median = aligned_gap(a, b, reduce="median")
    assert 0.0 <= median < 1e-6                       # three of five maps agree exactly
    gaps = sorted([1.0, aligned_gap(a[1:2], b[1:2]), 0.0, 0.0, 0.0])
    assert median == gaps[2]
    with pytest.raises(ValueError, match="reduce"):
        aligned_gap(a, b, reduce="mean")
