"""Explanation metrics on tiny hand-computed cases, and against captum where definitions match."""
import numpy as np
import pytest
import torch
from torch import nn

from medxai_lib.evaluate import (auprc, deletion_insertion,
                                 max_sensitivity, sparseness, topk_iou)
from medxai_lib.explain import saliency

from helpers import phantom_images, textured_densenet


def test_topk_iou_hand_case():
    maps = torch.arange(16.0).view(1, 1, 4, 4)        # top 25% = the last row
    mask = torch.zeros(1, 1, 4, 4)
    mask[0, 0, 3, 2:] = 1
    mask[0, 0, 0, 0] = 1
    # top-4 pixels {12..15}, mask {0, 14, 15}: intersection 2, union 5
    assert topk_iou(maps, mask, k=0.25).item() == pytest.approx(2 / 5)
    with pytest.raises(ValueError, match="k"):
        topk_iou(maps, mask, k=0)


def test_auprc_hand_case():
    maps = torch.tensor([[[[0.9, 0.8], [0.1, 0.7]]]])
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    # ranked: 0.9 (hit), 0.8 (miss), 0.7 (hit): AP = (1/1 + 2/3) / 2
    assert auprc(maps, mask).item() == pytest.approx((1 + 2 / 3) / 2)
    assert torch.isnan(auprc(maps, torch.zeros_like(mask))).all()
    with pytest.raises(ValueError, match="masks"):
        auprc(maps, mask[0])


class _Linear(nn.Module):
    """score = sum(w * x): deleting pixels in the order of w lowers the score fastest."""

    def __init__(self, weight):
        super().__init__()
        self.weight = nn.Parameter(weight, requires_grad=False)

    def forward(self, x):
        return (x * self.weight).sum((1, 2, 3))[:, None]


def test_deletion_insertion_hand_case():
    weight = torch.tensor([[[[4.0, 3.0], [2.0, 1.0]]]])
    model = _Linear(weight)
    x = torch.ones(1, 1, 2, 2)
    curves, auc = deletion_insertion(model, x, weight[:, 0], torch.tensor([0]), "deletion", n_steps=4, baseline=0.0)
    expected = torch.sigmoid(torch.tensor([10.0, 6.0, 3.0, 1.0, 0.0]))
    assert torch.allclose(curves[0], expected)
    assert auc.item() == pytest.approx(float(np.trapezoid(expected.numpy(), dx=0.25)))
    worst, worst_auc = deletion_insertion(model, x, -weight[:, 0], torch.tensor([0]), "deletion", 4, 0.0)
    assert worst_auc.item() > auc.item()  # the reversed order is less faithful
    ins, ins_auc = deletion_insertion(model, x, weight[:, 0], torch.tensor([0]), "insertion", 4, 0.0)
    assert torch.allclose(ins[0], torch.sigmoid(torch.tensor([0.0, 4.0, 7.0, 9.0, 10.0])))
    with pytest.raises(ValueError, match="maps"):
        deletion_insertion(model, x, torch.zeros(1, 3, 3), torch.tensor([0]))
    with pytest.raises(ValueError, match="mode"):
        deletion_insertion(model, x, weight[:, 0], torch.tensor([0]), "erase")


def test_sparseness_gini():
    assert sparseness(torch.ones(1, 10)).item() == pytest.approx(0.0)
    one_hot = torch.zeros(1, 10)
    one_hot[0, 3] = -5
    assert sparseness(one_hot).item() == pytest.approx(0.9)
    # hand: values (0, 1, 3): sum_i (2i - n - 1) x_i / (n sum) = (-2*0 + 0*1 + 2*3) / (3 * 4) = 0.5
    assert sparseness(torch.tensor([[3.0, 0.0, 1.0]])).item() == pytest.approx(0.5)
    assert sparseness(torch.zeros(2, 4)).tolist() == [0.0, 0.0]


def test_max_sensitivity_agrees_with_captum():
    from captum.metrics import sensitivity_max
    model = textured_densenet()
    x = phantom_images(2, size=48)
    explain = lambda inp: saliency(model, inp, 1)[:, 0]  # noqa: E731
    pattern = 0.02 * torch.sign(torch.randn(1, *x.shape[1:], generator=torch.Generator().manual_seed(3)))
    fixed = lambda inp, radius: inp + pattern  # noqa: E731  (same perturbation for both implementations)
    ours = max_sensitivity(explain, x, radius=0.02, n_samples=3, perturb=fixed)
    theirs = sensitivity_max(lambda inp: (explain(inp[0] if isinstance(inp, tuple) else inp),), x,
                             perturb_func=fixed, n_perturb_samples=3)
    assert torch.allclose(ours, theirs, rtol=1e-4)
    random = max_sensitivity(explain, x, radius=0.02, n_samples=4)
    assert (random > 0).all() and torch.equal(random, max_sensitivity(explain, x, radius=0.02, n_samples=4))
    assert torch.equal(max_sensitivity(explain, x, radius=0.0, n_samples=2), torch.zeros(2))


