"""Koch's-postulate checks for synthesised lesions (Niu et al. 2019): re-detection at the target boxes,
severity against the number of inoculated lesions, anatomy kept outside the boxes, lesions that follow
their descriptors."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import rankdata, spearmanr
from skimage.metrics import structural_similarity

import copy
from collections import Counter

from scipy import ndimage

from medxai_lib.explain.activation_network import ActivationNetwork
from medxai_lib.data.lesion_crops import CROP_KINDS, crops_at
from medxai_lib.data.lesions import Descriptor, DescriptorBank, box_mask
from medxai_lib.data.phantoms.fundus import LESION_TYPES, dr_grade
from medxai_lib.models.lesion_classifier import LesionTypeNet, classify_crops
from medxai_lib.models.detector import DRDetector, detector_input
from medxai_lib.models.pathogan import synthesize
from medxai_lib.evaluate.stats import bootstrap


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


def anatomy_scores(images: torch.Tensor, reference: torch.Tensor, region: torch.Tensor) -> dict[str, np.ndarray]:
    """Per image ``(B,)``: mean L1 and SSIM between ``images`` and ``reference`` ``(B, 3, S, S)`` inside
    ``region`` ``(B, 1, S, S)`` (e.g. the field of view outside the lesion boxes)."""
    if images.shape != reference.shape or region.shape != (len(images), 1, *images.shape[-2:]):
        raise ValueError(f"images, reference, region: expected (B, 3, S, S) twice and (B, 1, S, S), got "
                         f"{tuple(images.shape)}, {tuple(reference.shape)}, {tuple(region.shape)}")
    l1, ssim = [], []
    for a, b, r in zip(images.cpu().numpy(), reference.cpu().numpy(), region.cpu().numpy()[:, 0] > 0.5):
        l1.append(np.abs(a - b).mean(0)[r].mean())
        _, ssim_map = structural_similarity(a, b, channel_axis=0, data_range=1.0, full=True, win_size=7)
        ssim.append(ssim_map.mean(0)[r].mean())
    return {"l1": np.asarray(l1, dtype=float), "ssim": np.asarray(ssim, dtype=float)}


def most_potent(generator: torch.nn.Module, detector: DRDetector, bank: DescriptorBank, vessels: torch.Tensor,
                fov: torch.Tensor, corner: tuple[int, int], seed: int = 0) -> tuple[int, np.ndarray]:
    """Inoculate each descriptor of ``bank`` alone at ``corner`` on every anatomy map ``(B, A, S, S)`` (the
    generator's input: :func:`~medxai_lib.models.pathogan.anatomy_map`) and
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


# --- independent re-detection: a lesion-type classifier reads the inoculated boxes -------------------------

@dataclass
class BoxReading:
    """What the independent classifier sees at each placed box (one row per box, all images together)."""
    p_lesion: np.ndarray      # (N,) probability that the crop holds any lesion (1 - P(none))
    predicted: np.ndarray     # (N,) predicted kind (a name from CROP_KINDS)
    kinds: np.ndarray         # (N,) the descriptor's kind
    image_index: np.ndarray   # (N,) which image the box belongs to


def box_crops(images: torch.Tensor, banks: Sequence[DescriptorBank], size: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """``size x size`` crops of ``images`` ``(B, 3, S, S)`` centred on every box of ``banks[b]``:
    ``(crops (N, 3, size, size), descriptor kinds (N,), image index (N,))``."""
    if len(banks) != len(images):
        raise ValueError(f"banks: expected one bank per image ({len(images)}), got {len(banks)}")
    index = [b for b, bank in enumerate(banks) for _ in bank]
    if not index:
        raise ValueError("banks: every bank is empty; nothing to crop")
    centres = [((d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2) for bank in banks for d in bank]
    return (crops_at(images.cpu(), index, centres, size), np.asarray([d.kind for bank in banks for d in bank]),
            np.asarray(index))


def read_boxes(classifier: LesionTypeNet, images: torch.Tensor, banks: Sequence[DescriptorBank]) -> BoxReading:
    """Crop ``images`` ``(B, 3, S, S)`` in [0, 1] at the centre of every box of ``banks[b]`` and classify."""
    crops, kinds, index = box_crops(images, banks, classifier.crop)
    probs = classify_crops(classifier, crops).numpy()
    return BoxReading(1 - probs[:, 0], np.asarray(CROP_KINDS)[probs.argmax(1)], kinds, index)


def rule_grade_of(kinds: Sequence[str]) -> int:
    """The phantom's grading rule (:func:`~medxai_lib.data.phantoms.fundus.dr_grade`) applied to a list of
    lesion kinds (``"none"`` and unknown names are ignored)."""
    counts = Counter(k for k in kinds if k in LESION_TYPES)
    return dr_grade(dict(counts))


# --- activation-network controls --------------------------------------------------------------------------

def randomised_detector(detector: DRDetector, seed: int = 0) -> DRDetector:
    """A copy of ``detector`` with every layer re-initialised (same architecture, random weights): the
    randomised-weights control of Adebayo et al. for its deconvnet projection. The weights are drawn with
    the detector's own initialisation rule from a generator seeded by ``seed``; the caller's global torch
    RNG is left as it was."""
    clone = copy.deepcopy(detector)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        clone.reset_weights()
    return clone.eval()


def brightness_map(images: torch.Tensor, fov: torch.Tensor, exclude: torch.Tensor | None = None,
                   colour: str = "brightness", margin: int = 2) -> torch.Tensor:
    """A trivial "lesion" map of ``(B, 3, S, S)`` images in [0, 1] inside ``fov`` ``(B, 1, S, S)``, ``(B, S, S)``:
    ``colour="brightness"`` is the mean of R, G, B (exudates and cotton-wool spots light it up, and so does the
    optic disc); ``"yellowness"`` is ``(R + G) / 2 - B`` clipped at 0 (hard exudates are yellow). Pixels where
    ``exclude`` ``(B, 1, S, S)`` is set (e.g. the optic disc), grown by ``margin`` pixels, are zeroed, so the
    map cannot peak there."""
    if images.ndim != 4 or fov.shape != (len(images), 1, *images.shape[-2:]):
        raise ValueError(f"images, fov: expected (B, 3, S, S) and (B, 1, S, S), got {tuple(images.shape)}, {tuple(fov.shape)}")
    if exclude is not None and exclude.shape != fov.shape:
        raise ValueError(f"exclude: expected {tuple(fov.shape)} like fov, got {tuple(exclude.shape)}")
    if colour == "brightness":
        values = images.mean(1)
    elif colour == "yellowness":
        values = ((images[:, 0] + images[:, 1]) / 2 - images[:, 2]).clamp(min=0)
    else:
        raise ValueError(f"colour: expected 'brightness' or 'yellowness', got {colour!r}")
    if exclude is not None and margin > 0:
        exclude = F.max_pool2d(exclude.float(), 2 * margin + 1, stride=1, padding=margin)
    keep = fov[:, 0] if exclude is None else fov[:, 0] * (1 - exclude[:, 0].float())
    return values * keep


def map_scores(maps: torch.Tensor, masks: torch.Tensor, fov: torch.Tensor, tolerance: int = 1) -> dict[str, np.ndarray]:
    """Per image, how well a non-negative map ``(B, S, S)`` finds a binary ``masks`` ``(B, S, S)`` inside
    ``fov`` ``(B, S, S)``: ``pointing`` (1 if the map's peak lies within ``tolerance`` pixels of the mask)
    and ``enrichment`` (the map's mass share on the mask / the mask's area share; 1 = no preference)."""
    if maps.shape != masks.shape or maps.shape != fov.shape or maps.ndim != 3:
        raise ValueError(f"maps, masks, fov: expected three (B, S, S) tensors, got {tuple(maps.shape)}, "
                         f"{tuple(masks.shape)}, {tuple(fov.shape)}")
    maps, fov = maps.detach().cpu().clamp(min=0) * fov.cpu(), fov.cpu().float()
    masks = masks.detach().cpu().float() * fov
    grown = masks.numpy() > 0.5
    if tolerance > 0:
        grown = np.stack([ndimage.binary_dilation(m, iterations=tolerance) for m in grown])
    peak = maps.flatten(1).argmax(1).numpy()
    pointing = grown.reshape(len(grown), -1)[np.arange(len(peak)), peak].astype(float)
    share = (maps * masks).flatten(1).sum(1) / maps.flatten(1).sum(1).clamp(min=1e-12)
    area = masks.flatten(1).sum(1) / fov.flatten(1).sum(1).clamp(min=1)
    return {"pointing": pointing, "enrichment": (share / area.clamp(min=1e-12)).numpy()}


# --- severity against the grading rule ----------------------------------------------------------------------

def severity_scores(generator: torch.nn.Module, detectors: Mapping[str, torch.nn.Module], descriptor: Descriptor,
                    vessels: torch.Tensor, fov: torch.Tensor, corners: Sequence[Sequence[tuple[int, int]]],
                    counts: Sequence[int], classifier: LesionTypeNet | None = None
                    ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Inoculate ``n`` copies of ``descriptor`` (at the first ``n`` of each image's ``corners``) on every
    anatomy map ``(B, A, S, S)`` (the generator's input), for each ``n`` in ``counts`` (one synthesis per ``n``, read by every
    detector). Returns each named detector's grades ``(len(counts), B)`` and, with a ``classifier``, the
    rule's grade of the kinds it reads at the boxes (same shape; the independent reader's severity)."""
    if len(corners) != len(vessels):
        raise ValueError(f"corners: expected one list of corners per vessel map ({len(vessels)}), got {len(corners)}")
    if not isinstance(detectors, Mapping) or not detectors:
        raise ValueError(f"detectors: expected a non-empty mapping name -> grade regressor, got {type(detectors).__name__}")
    grades: dict[str, list[np.ndarray]] = {name: [] for name in detectors}
    read = []
    for n in counts:
        banks = [copies_at(descriptor, c[:n]) for c in corners]
        images = synthesize(generator, vessels, fov, banks)
        for name, detector in detectors.items():
            grades[name].append(predicted_scores(detector, images))
        if classifier is not None:
            reading = read_boxes(classifier, images, banks) if n > 0 else None
            read.append([rule_grade_of(reading.predicted[reading.image_index == b]) if reading is not None else 0
                         for b in range(len(vessels))])
    return ({name: np.stack(g) for name, g in grades.items()},
            np.asarray(read, dtype=float) if classifier is not None else None)


def per_image_spearman(counts: Sequence[int], scores: np.ndarray) -> np.ndarray:
    """Spearman's rho between ``counts`` ``(K,)`` and each image's scores, ``scores`` ``(K, N)`` -> ``(N,)``
    (0 where an image's scores are constant)."""
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2 or scores.shape[0] != len(counts) or len(counts) < 3:
        raise ValueError(f"scores: expected (len(counts) >= 3, N), got {scores.shape} for {len(counts)} counts")
    out = []
    for column in scores.T:
        out.append(0.0 if np.ptp(column) == 0 else float(spearmanr(counts, column)[0]))
    return np.asarray(out)


def median_potent(potency: np.ndarray, kinds: Sequence[str], kind: str | None = None) -> int:
    """Index of the descriptor of median potency (among those of ``kind``; all when ``None``)."""
    potency, kinds = np.asarray(potency, dtype=float), np.asarray(kinds)
    pool = np.flatnonzero(kinds == kind) if kind is not None else np.arange(len(potency))
    if len(pool) == 0:
        raise ValueError(f"kind: no descriptor of kind {kind!r}")
    order = pool[np.argsort(potency[pool], kind="stable")]
    return int(order[(len(order) - 1) // 2])


def lesion_hits(bank: DescriptorBank, lesion_masks: Sequence[torch.Tensor], fov: Sequence[torch.Tensor] | None = None,
                seed: int | None = None) -> np.ndarray:
    """Per descriptor, 1.0 if its region overlaps a lesion of its source image (``lesion_masks[k]``
    ``(S, S)`` for the descriptor whose ``source`` is ``"image k"``), else 0.0. With ``seed``, each region
    is first moved to a random place inside ``fov[k]`` ``(S, S)``: the random-placement control."""
    rng = np.random.default_rng(seed)
    hits = []
    for d in bank:
        k = int(d.source.split()[-1])
        mask = lesion_masks[k].bool().cpu().numpy()
        x0, y0, x1, y1 = d.box
        if seed is not None:
            if fov is None:
                raise ValueError("fov: needed to place regions at random")
            inside = fov[k].bool().cpu().numpy()
            for _ in range(200):
                x, y = int(rng.integers(0, mask.shape[1] - (x1 - x0) + 1)), int(rng.integers(0, mask.shape[0] - (y1 - y0) + 1))
                if inside[y:y + y1 - y0, x:x + x1 - x0][d.mask].all():
                    break
            x0, y0, x1, y1 = x, y, x + x1 - x0, y + y1 - y0
        hits.append(float((mask[y0:y1, x0:x1] & d.mask).any()))
    return np.asarray(hits)


def two_sample_auc(real: torch.Tensor, synthetic: torch.Tensor, size: int = 24, folds: int = 5, seed: int = 0) -> float:
    """A stand-in for a realism rating: the cross-validated ROC AUC of a logistic regression that tells
    ``real`` from ``synthetic`` images ``(N, 3, S, S)`` (downsampled to ``size`` px). 0.5 = it cannot tell
    them apart; 1.0 = it always can. A two-sample test by classifier, not a human judgement."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    if real.ndim != 4 or synthetic.shape[1:] != real.shape[1:] or min(len(real), len(synthetic)) < folds:
        raise ValueError(f"real, synthetic: expected two (N >= {folds}, 3, S, S) batches, got {tuple(real.shape)}, "
                         f"{tuple(synthetic.shape)}")
    small = lambda x: F.interpolate(x.float().cpu(), size=(size, size), mode="area").flatten(1).numpy()  # noqa: E731
    features = np.concatenate([small(real), small(synthetic)])
    labels = np.r_[np.zeros(len(real)), np.ones(len(synthetic))]
    splits = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return float(cross_val_score(LogisticRegression(C=0.1, max_iter=2000), features, labels, cv=splits,
                                 scoring="roc_auc").mean())


# --- where an independent grade regressor finds the inoculated evidence -------------------------------------

def restore_boxes(images: torch.Tensor, clean: torch.Tensor, banks: Sequence[DescriptorBank], margin: int = 1) -> torch.Tensor:
    """``images`` ``(B, 3, S, S)`` with the pixels inside every box of ``banks[b]`` (grown by ``margin``)
    put back from ``clean`` (the same synthesis without descriptors): the lesions removed, everything
    else kept. The grade drop this causes says how much of the grade the boxes carry."""
    if images.shape != clean.shape or images.ndim != 4 or len(banks) != len(images):
        raise ValueError(f"images, clean, banks: expected two (B, 3, S, S) batches and B banks, got "
                         f"{tuple(images.shape)}, {tuple(clean.shape)}, {len(banks)}")
    boxes = box_mask(banks, images.shape[-1], margin).to(images)
    return images * (1 - boxes) + clean.to(images) * boxes


# --- retinal detail at the optic disc ---------------------------------------------------------------------

def disc_edge_ratio(images: torch.Tensor, reference: torch.Tensor, disc: torch.Tensor, width: int = 2) -> np.ndarray:
    """Sharpness of the optic-disc boundary in ``images`` relative to ``reference`` (the real fundi of the
    same vessel maps), ``(B,)``: the mean Sobel gradient magnitude of the grey image in a ring of ``width``
    pixels on each side of the disc's edge (``disc`` ``(B, 1, S, S)``), divided by the reference's. 1 =
    as sharp as the real disc, < 1 = blurred."""
    if images.shape != reference.shape or images.ndim != 4 or disc.shape != (len(images), 1, *images.shape[-2:]):
        raise ValueError(f"images, reference, disc: expected (B, 3, S, S) twice and (B, 1, S, S), got "
                         f"{tuple(images.shape)}, {tuple(reference.shape)}, {tuple(disc.shape)}")
    masks = disc[:, 0].cpu().numpy() > 0.5
    if not masks.reshape(len(masks), -1).any(1).all():
        raise ValueError("disc: an image has no optic disc pixel")
    rings = np.stack([ndimage.binary_dilation(m, iterations=width) & ~ndimage.binary_erosion(m, iterations=width)
                      for m in masks])

    def edges(x: torch.Tensor) -> np.ndarray:
        grey = x.detach().float().cpu().numpy().mean(1)
        return np.hypot(ndimage.sobel(grey, axis=1), ndimage.sobel(grey, axis=2))

    ours, theirs = edges(images), edges(reference)
    return np.asarray([o[r].mean() / max(t[r].mean(), 1e-12) for o, t, r in zip(ours, theirs, rings)])


def box_grade_drop(detector: torch.nn.Module, inoculated: torch.Tensor, clean: torch.Tensor,
                   banks: Sequence[DescriptorBank], margin: int = 1) -> np.ndarray:
    """Per image ``(B,)``: the detector's grade of ``inoculated`` ``(B, 3, S, S)`` minus its grade once the
    boxes of ``banks`` are put back from ``clean`` (:func:`restore_boxes`). With the boxes where the lesions
    were inoculated this is the grade the lesions carry; with other boxes it is the null."""
    restored = restore_boxes(inoculated, clean, banks, margin)
    return predicted_scores(detector, inoculated) - predicted_scores(detector, restored)


def spearman_statistic(samples: np.ndarray) -> np.ndarray:
    """Spearman's rho of every bootstrap replicate of paired values, ``(B, N, 2)`` -> ``(B,)`` (ranks with
    ties averaged, as :func:`scipy.stats.spearmanr`); 0 for a replicate where either variable is constant."""
    samples = np.asarray(samples, dtype=float)
    if samples.ndim != 3 or samples.shape[-1] != 2:
        raise ValueError(f"samples: expected (B, N, 2) pairs (x, y), got shape {samples.shape}")
    ranks = rankdata(samples, axis=1)
    ranks = ranks - ranks.mean(1, keepdims=True)
    rx, ry = ranks[..., 0], ranks[..., 1]
    denominator = np.sqrt((rx ** 2).sum(1) * (ry ** 2).sum(1))
    return np.where(denominator > 0, (rx * ry).sum(1) / np.where(denominator > 0, denominator, 1), 0.0)


def spearman_ci(x: np.ndarray, y: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Spearman's rho between ``x`` and ``y`` ``(N,)`` with a percentile bootstrap 95% CI over the N units
    (:func:`medxai_lib.evaluate.stats.bootstrap` of :func:`spearman_statistic`): ``(rho, lo, hi)``.
    Resamples where either variable is constant count as 0."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 3:
        raise ValueError(f"x, y: expected two (N >= 3,) arrays, got {x.shape} and {y.shape}")
    estimate = bootstrap(np.stack([x, y], 1), spearman_statistic, n_boot, seed)
    return estimate.value, estimate.lo, estimate.hi
