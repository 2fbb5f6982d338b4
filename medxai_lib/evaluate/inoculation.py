"""Koch's-postulate checks for synthesised lesions (Niu et al. 2019): re-detection at the target boxes,
severity against the number of inoculated lesions, anatomy kept outside the boxes, lesions that follow
their descriptors."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

from medxai_lib.explain.activation_network import ActivationNetwork
from medxai_lib.data.lesions import Descriptor, DescriptorBank, box_mask
from medxai_lib.models.detector import DRDetector, detector_input
from medxai_lib.models.pathogan import synthesize


def spread_positions(fov: torch.Tensor, width: int, height: int, count: int, seed: int = 0,
                     radius: float = 0.36, gap: int = 2) -> list[tuple[int, int]]:
    """Up to ``count`` top-left corners of ``width x height`` boxes inside ``fov`` ``(S, S)``, centres within
    ``radius x S`` of the image centre, no two boxes closer than ``gap`` pixels. Deterministic by ``seed``."""
    rng = np.random.default_rng(seed)
    size = fov.shape[-1]
    taken = np.zeros((size, size), bool)
    corners: list[tuple[int, int]] = []
    for _ in range(200 * max(count, 1)):
        if len(corners) == count:
            break
        angle, r = rng.uniform(0, 2 * np.pi), radius * size * np.sqrt(rng.uniform())
        x0, y0 = int(size / 2 + r * np.cos(angle) - width / 2), int(size / 2 + r * np.sin(angle) - height / 2)
        if x0 < 0 or y0 < 0 or x0 + width > size or y0 + height > size or not bool(fov[y0:y0 + height, x0:x0 + width].all()):
            continue
        if taken[max(0, y0 - gap):y0 + height + gap, max(0, x0 - gap):x0 + width + gap].any():
            continue
        taken[y0:y0 + height, x0:x0 + width] = True
        corners.append((x0, y0))
    return corners


def copies_at(descriptor: Descriptor, corners: Sequence[tuple[int, int]]) -> DescriptorBank:
    """A bank holding ``descriptor`` moved to each corner."""
    return DescriptorBank([descriptor.moved_to(x, y) for x, y in corners])


@torch.no_grad()
def predicted_scores(detector: DRDetector, images: torch.Tensor) -> np.ndarray:
    """The detector's grade regression for ``(B, 3, S, S)`` images in [0, 1], ``(B,)``."""
    return detector.eval()(detector_input(images)).flatten().cpu().numpy()


@dataclass
class Redetection:
    pointing: float       # share of images whose activation-map peak lies in a target box
    chance: float         # share of the field of view the boxes cover (pointing by chance)
    energy_in_boxes: float  # share of the activation map's mass inside the boxes
    per_image: np.ndarray


def redetection(detector: DRDetector, synthetic: torch.Tensor, banks: Sequence[DescriptorBank], fov: torch.Tensor,
                layer: str = "conv4b", margin: int = 1) -> Redetection:
    """Run the activation network on synthetic fundi ``(B, 3, S, S)`` in [0, 1] and score how well it finds
    the inoculated lesions (boxes grown by ``margin``). Images without lesions are skipped."""
    keep = [i for i, bank in enumerate(banks) if len(bank)]
    if not keep:
        raise ValueError("banks: every bank is empty; nothing was inoculated")
    maps = ActivationNetwork(detector).lesion_map(detector_input(synthetic[keep]), layer).cpu()
    fov = fov[keep].reshape(len(keep), *maps.shape[-2:]).cpu()
    maps = maps * fov
    boxes = box_mask([banks[i] for i in keep], maps.shape[-1], margin)[:, 0] * fov
    peak = maps.flatten(1).argmax(1)
    hits = boxes.flatten(1).gather(1, peak[:, None])[:, 0].numpy()
    chance = (boxes.flatten(1).sum(1) / fov.flatten(1).sum(1)).numpy()
    energy = ((maps * boxes).flatten(1).sum(1) / maps.flatten(1).sum(1).clamp(min=1e-12)).numpy()
    return Redetection(float(hits.mean()), float(chance.mean()), float(energy.mean()), hits)


def severity_curve(scores_by_count: np.ndarray) -> tuple[np.ndarray, float]:
    """``(N_counts, N_images)`` predicted grades for 0, 1, ... inoculated lesions -> (mean per count,
    Spearman rho between count and mean grade)."""
    scores_by_count = np.asarray(scores_by_count, dtype=float)
    if scores_by_count.ndim != 2 or len(scores_by_count) < 3:
        raise ValueError(f"scores_by_count: expected (N_counts >= 3, N_images), got {scores_by_count.shape}")
    means = scores_by_count.mean(1)
    return means, float(spearmanr(np.arange(len(means)), means)[0])


def anatomy_distance(images: torch.Tensor, reference: torch.Tensor, region: torch.Tensor) -> dict[str, float]:
    """Mean L1 and SSIM between ``images`` and ``reference`` ``(B, 3, S, S)`` inside ``region`` ``(B, 1, S, S)``
    (e.g. the field of view outside the lesion boxes)."""
    if images.shape != reference.shape or region.shape != (len(images), 1, *images.shape[-2:]):
        raise ValueError(f"images, reference, region: expected (B, 3, S, S) twice and (B, 1, S, S), got "
                         f"{tuple(images.shape)}, {tuple(reference.shape)}, {tuple(region.shape)}")
    l1, ssim = [], []
    for a, b, r in zip(images.cpu().numpy(), reference.cpu().numpy(), region.cpu().numpy()[:, 0] > 0.5):
        l1.append(np.abs(a - b).mean(0)[r].mean())
        _, ssim_map = structural_similarity(a, b, channel_axis=0, data_range=1.0, full=True, win_size=7)
        ssim.append(ssim_map.mean(0)[r].mean())
    return {"l1": float(np.mean(l1)), "ssim": float(np.mean(ssim))}


def most_potent(generator: torch.nn.Module, detector: DRDetector, bank: DescriptorBank, vessels: torch.Tensor,
                fov: torch.Tensor, corner: tuple[int, int], seed: int = 0) -> tuple[int, np.ndarray]:
    """Inoculate each descriptor of ``bank`` alone at ``corner`` on every vessel map ``(B, 1, S, S)`` and
    return ``(index of the descriptor that raises the mean predicted grade most, mean grade per descriptor)``.
    Use vessel maps that the experiments do not reuse."""
    if len(bank) == 0:
        raise ValueError("bank: empty; nothing to choose from")
    grades = []
    for d in bank:
        placed = DescriptorBank([d.moved_to(*corner)])
        grades.append(predicted_scores(detector, synthesize(generator, vessels, fov, placed, seed=seed)).mean())
    grades = np.asarray(grades)
    return int(grades.argmax()), grades
