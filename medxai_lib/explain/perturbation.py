"""Perturbation attributions: change the input, watch the output. Model-agnostic: ``model`` may be
any callable mapping ``(N, C, H, W)`` images to ``(N, K)`` scores. All return ``(B, T, 1, H, W)``.

* occlusion (Zeiler & Fergus 2014): slide a baseline patch; every window of a chunk and every class
  from the same batched forwards; a pixel's attribution = mean score drop over the windows covering it.
* RISE (Petsiuk et al. 2018): random smooth masks, saliency = score-weighted average of the masks
  (optionally with mean-centred scores, a lower-variance estimator of the same map up to a constant).
* LIME (Ribeiro et al. 2016) on SLIC superpixels: a local weighted linear surrogate.
"""
from __future__ import annotations

import numbers
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medxai_lib.models.inference import fast_forward
from medxai_lib.explain.batching import chunk_size_for
from medxai_lib.explain.capture import ClassSpec, check_images, check_scores, explaining, resolve_classes

Model = nn.Module | Callable[[torch.Tensor], torch.Tensor]


def _checked_scores(model: Model, images: torch.Tensor) -> torch.Tensor:
    check_images(model, images)   # refuses NaN/inf input too
    return check_scores(model(images), images.shape[0])


def _as_int(value: object) -> object:
    """numpy integers count as ints (``window=np.int64(8)``); anything else is returned unchanged."""
    return int(value) if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)) else value


def _probabilities(scores: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(scores) if scores.shape[1] == 1 else torch.softmax(scores, 1)


def _forward_in_chunks(run: Model, batch: torch.Tensor, chunk: int) -> torch.Tensor:
    """``run`` (a :func:`~medxai_lib.models.inference.fast_forward` runner) over ``batch``, ``chunk`` images at a time."""
    return torch.cat([run(part) for part in batch.split(chunk)])


def window_masks(height: int, width: int, window: int, stride: int, device: torch.device | None = None) -> torch.Tensor:
    """Binary masks of all sliding windows, ``(N, 1, H, W)``; positions as in captum's Occlusion."""
    window, stride = _as_int(window), _as_int(stride)
    if not (type(window) is int and type(stride) is int and 1 <= window <= min(height, width) and stride >= 1):
        raise ValueError(f"window, stride: expected 1 <= window <= {min(height, width)} and stride >= 1, "
                         f"got window={window!r}, stride={stride!r}")
    tops = range(0, height - window + 1, stride)
    lefts = range(0, width - window + 1, stride)
    masks = torch.zeros(len(tops) * len(lefts), 1, height, width, device=device)
    for n, (top, left) in enumerate((t, l) for t in tops for l in lefts):
        masks[n, 0, top:top + window, left:left + window] = 1
    return masks


def occlusion(model: Model, images: torch.Tensor, classes: ClassSpec = None, window: int = 16, stride: int = 8,
              baseline: float = 0.0, chunk_size: int | str = "auto") -> torch.Tensor:
    """Occlusion sensitivity, ``(B, T, 1, H, W)``: mean over covering windows of ``score(x) - score(x occluded)``
    (raw model outputs, like captum). Pixels no window covers get 0."""
    with explaining(model), torch.no_grad(), fast_forward(model) as run:
        scores = _checked_scores(model, images)
        idx = resolve_classes(classes, scores)
        masks = window_masks(images.shape[-2], images.shape[-1], window, stride, images.device)
        coverage = masks.sum(0)                                              # (1, H, W)
        chunk = chunk_size_for(model, images, len(masks), chunk_size)
        out = []
        for b in range(len(images)):
            occluded = images[b:b + 1] * (1 - masks) + baseline * masks         # (N, C, H, W)
            drop = scores[b:b + 1] - _forward_in_chunks(run, occluded, chunk)  # (N, K)
            drop = drop[:, idx[b]]                                              # (N, T)
            summed = torch.einsum("nt,nhw->thw", drop, masks[:, 0])
            out.append(torch.where(coverage > 0, summed / coverage.clamp_min(1), torch.zeros_like(summed)))
        return torch.stack(out)[:, :, None]


def rise_masks(n_masks: int, size: tuple[int, int], grid: int = 8, keep_prob: float = 0.5, seed: int = 0
               ) -> torch.Tensor:
    """RISE's smooth random masks (Petsiuk et al. 2018; as in the authors' code): ``grid`` x ``grid``
    Bernoulli(``keep_prob``) cells, bilinearly upsampled to ``(grid + 1)`` cells of ``ceil(size / grid)``
    pixels and cropped at a random shift. Returns ``(N, 1, H, W)`` in [0, 1]."""
    n_masks, grid = _as_int(n_masks), _as_int(grid)
    if not 0 < keep_prob < 1:
        raise ValueError(f"keep_prob: expected a probability in (0, 1), got {keep_prob!r}")
    if type(grid) is not int or grid < 1:
        raise ValueError(f"grid: expected a positive int, got {grid!r}")
    if type(n_masks) is not int or n_masks < 1:
        raise ValueError(f"n_masks: expected a positive int, got {n_masks!r}")
    height, width = size
    cell_h, cell_w = int(np.ceil(height / grid)), int(np.ceil(width / grid))
    generator = torch.Generator().manual_seed(seed)
    cells = (torch.rand(n_masks, 1, grid, grid, generator=generator) < keep_prob).float()
    big = F.interpolate(cells, size=((grid + 1) * cell_h, (grid + 1) * cell_w), mode="bilinear", align_corners=False)
    shifts = torch.randint(0, cell_h, (n_masks,), generator=generator), torch.randint(0, cell_w, (n_masks,), generator=generator)
    return torch.stack([big[n, :, dy:dy + height, dx:dx + width] for n, (dy, dx) in enumerate(zip(*shifts))])


def rise_scores(model: Model, images: torch.Tensor, masks: torch.Tensor, classes: ClassSpec = None,
                chunk_size: int | str = "auto") -> torch.Tensor:
    """The class probabilities of every masked image ``images[b] * masks[n]``: ``(B, N, T)`` (softmax;
    sigmoid for one output). RISE maps are weighted sums of the masks with these scores."""
    if masks.ndim != 4 or masks.shape[1] != 1 or masks.shape[-2:] != images.shape[-2:]:
        raise ValueError(f"masks: expected (N, 1, H, W) with (H, W) = {tuple(images.shape[-2:])}, got {tuple(masks.shape)}")
    with explaining(model), torch.no_grad(), fast_forward(model) as run:
        scores = _checked_scores(model, images)
        idx = resolve_classes(classes, scores)
        masks = masks.to(images.device)
        chunk = chunk_size_for(model, images, len(masks), chunk_size)
        return torch.stack([_probabilities(_forward_in_chunks(run, images[b:b + 1] * masks, chunk))[:, idx[b]]
                            for b in range(len(images))])


def rise_from_scores(masks: torch.Tensor, probs: torch.Tensor, keep_prob: float, centred: bool = False) -> torch.Tensor:
    """RISE maps ``(B, T, 1, H, W)`` from ``masks (N, 1, H, W)`` and ``probs (B, N, T)``:
    ``sum_i p_i M_i / (N * keep_prob)`` (the paper), or with ``centred`` the scores minus their mean over
    the masks, ``sum_i (p_i - mean p) M_i / (N * keep_prob)``: the same expected map up to a constant
    (every pixel is kept with probability ``keep_prob``), without the noise of how often each pixel
    happened to be kept, which dominates the paper's estimator when the scores vary little."""
    weights = probs - probs.mean(1, keepdim=True) if centred else probs
    maps = torch.einsum("bnt,nhw->bthw", weights, masks[:, 0].to(probs.device)) / (masks.shape[0] * keep_prob)
    return maps[:, :, None]


def rise(model: Model, images: torch.Tensor, classes: ClassSpec = None, n_masks: int = 500, grid: int = 8,
         keep_prob: float = 0.5, seed: int = 0, chunk_size: int | str = "auto", centred: bool = False) -> torch.Tensor:
    """RISE, ``(B, T, 1, H, W)``: ``sum_i p_c(x * M_i) M_i / (N * keep_prob)`` with smooth random masks
    (:func:`rise_masks`: ``grid`` x ``grid`` Bernoulli cells, bilinearly upsampled, randomly shifted).
    Scores are probabilities (softmax; sigmoid for one output). The same masks for every image and
    class. ``centred``: subtract each image's mean score first (:func:`rise_from_scores`)."""
    check_images(model, images)
    masks = rise_masks(n_masks, tuple(images.shape[-2:]), grid, keep_prob, seed).to(images.device)
    return rise_from_scores(masks, rise_scores(model, images, masks, classes, chunk_size), keep_prob, centred)


def superpixels(image: torch.Tensor, n_segments: int = 40, compactness: float = 10.0) -> np.ndarray:
    """SLIC superpixels of a ``(C, H, W)`` image (any scaling), ``(H, W)`` int labels from 0."""
    from skimage.segmentation import slic
    array = image.detach().cpu().float().numpy()
    array = (array - array.min()) / max(float(array.max() - array.min()), 1e-12)
    if array.shape[0] == 1:
        return slic(array[0], n_segments=n_segments, compactness=compactness / 100, channel_axis=None, start_label=0)
    return slic(array.transpose(1, 2, 0), n_segments=n_segments, compactness=compactness, start_label=0)


def lime(model: Model, images: torch.Tensor, classes: ClassSpec = None, n_samples: int = 200, n_segments: int = 40,
         baseline: float = 0.0, kernel_width: float = 0.25, ridge_alpha: float = 1.0, seed: int = 0,
         chunk_size: int | str = "auto") -> torch.Tensor:
    """LIME on SLIC superpixels, ``(B, T, 1, H, W)``: each superpixel painted with its coefficient in a
    ridge regression of the class probability on which superpixels were kept, weighted by
    ``exp(-d^2 / kernel_width^2)`` with d the cosine distance to the unperturbed image."""
    from sklearn.linear_model import Ridge
    n_samples = _as_int(n_samples)
    if type(n_samples) is not int or n_samples < 2:
        raise ValueError(f"n_samples: expected an int >= 2, got {n_samples!r}")
    with explaining(model), torch.no_grad(), fast_forward(model) as run:
        scores = _checked_scores(model, images)
        idx = resolve_classes(classes, scores)
        rng = np.random.default_rng(seed)
        chunk = chunk_size_for(model, images, n_samples, chunk_size)
        out = []
        for b in range(len(images)):
            segments = superpixels(images[b], n_segments)
            n_seg = int(segments.max()) + 1
            keep = rng.integers(0, 2, size=(n_samples, n_seg))
            keep[0] = 1                                                     # the unperturbed image
            seg_t = torch.as_tensor(segments, device=images.device)
            pixel_keep = torch.as_tensor(keep, dtype=images.dtype, device=images.device)[:, seg_t][:, None]  # (N,1,H,W)
            perturbed = images[b:b + 1] * pixel_keep + baseline * (1 - pixel_keep)
            probs = _probabilities(_forward_in_chunks(run, perturbed, chunk))[:, idx[b]].cpu().numpy()
            cosine = keep.sum(1) / (np.sqrt(keep.sum(1).clip(min=1)) * np.sqrt(n_seg))
            weights = np.exp(-((1 - cosine) ** 2) / kernel_width ** 2)
            maps = []
            for t in range(probs.shape[1]):
                surrogate = Ridge(alpha=ridge_alpha).fit(keep, probs[:, t], sample_weight=weights)
                maps.append(torch.as_tensor(surrogate.coef_, dtype=images.dtype)[torch.as_tensor(segments)])
            out.append(torch.stack(maps))
        return torch.stack(out)[:, :, None].to(images.device)
