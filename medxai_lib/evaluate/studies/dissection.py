"""Network dissection (Bau et al. 2017) on concept masks, with a null per concept, and the angular
coverage of border units.

For unit k of a layer, ``T_k`` is the top-``quantile`` activation over every position of every image
(Bau: the top 0.5%). Its map, upsampled bilinearly to the mask size and thresholded at ``T_k``, is
compared with each concept mask; IoU_kc = sum over images of the intersection / sum of the union.

As in Bau et al., each unit is labelled with its single best concept. It *detects* that concept only
when its IoU beats ``min_iou`` (Bau: 0.04) and the concept's **null**: the ``null_quantile`` (95%) of
the IoUs of every unit of the layer against the concept masks *shuffled across images* (each image gets
another image's masks; ``n_shuffles`` shuffles). Shuffling keeps each concept's size and typical
position, so a unit that fires "where lesions usually are", or a large concept that any unit overlaps,
scores as high in the null as on the true masks; only a unit that follows the concept from image to
image beats it. (Whether *training* made a detector is a different question: dissect an untrained
network of the same shape the same way and compare.)
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medxai_lib.explain.capture import check_images, explaining, forward_with_capture, resolve_layer
from medxai_lib.evaluate.stats import bootstrap, format_ci

_MAX_QUANTILE_VALUES = 16_000_000


def layer_activations(model: nn.Module, images: torch.Tensor, layer: str, batch_size: int = 64) -> torch.Tensor:
    """Activations of ``layer`` for every image, ``(N, K, h, w)``, in batched no-grad forwards."""
    check_images(model, images)
    named = [resolve_layer(model, layer)]
    outs = []
    with explaining(model), torch.no_grad():
        for part in images.split(batch_size):
            _, acts = forward_with_capture(model, part, named)
            outs.append(acts[named[0][0]].detach())
    return torch.cat(outs)


def unit_thresholds(activations: torch.Tensor, quantile: float) -> torch.Tensor:
    """``T_k``: the ``1 - quantile`` quantile of unit k's activations over all images and positions.
    ``activations (N, K, h, w)`` -> ``(K,)``."""
    if not 0 < quantile < 1:
        raise ValueError(f"quantile: expected a share in (0, 1), got {quantile!r}")
    per_unit = activations.transpose(0, 1).flatten(1).float()            # (K, N*h*w)
    if per_unit.shape[1] > _MAX_QUANTILE_VALUES:                         # torch.quantile's input limit
        keep = torch.randperm(per_unit.shape[1], generator=torch.Generator().manual_seed(0))[:_MAX_QUANTILE_VALUES]
        per_unit = per_unit[:, keep]
    return torch.quantile(per_unit, 1 - quantile, dim=1)


def firing_maps(activations: torch.Tensor, thresholds: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Where each unit fires: activations upsampled (bilinear) to ``size`` and compared with ``T_k``.
    ``(N, K, h, w)``, ``(K,)`` -> bool ``(N, K, *size)``."""
    up = F.interpolate(activations.float(), size=size, mode="bilinear", align_corners=False)
    return up > thresholds.view(1, -1, 1, 1)


def iou_counts(activations: torch.Tensor, thresholds: torch.Tensor, concepts: torch.Tensor,
               mask_order: Sequence[torch.Tensor] = (), batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image intersections and unions of every unit's firing map with every concept mask.

    Args:
        activations: ``(N, K, h, w)``; thresholds: ``(K,)``; concepts: ``(N, C, H, W)`` binary masks.
        mask_order: extra image orders (each a permutation ``(N,)``): image i is then compared with the
            masks of image ``order[i]`` (the shuffled-mask null). The true order always comes first.
    Returns: ``(intersections, unions)``, each ``(1 + len(mask_order), N, K, C)`` float64 pixel counts.
    """
    if activations.ndim != 4 or concepts.ndim != 4 or activations.shape[0] != concepts.shape[0]:
        raise ValueError(f"activations, concepts: expected (N, K, h, w) and (N, C, H, W) with one N, got "
                         f"{tuple(activations.shape)} and {tuple(concepts.shape)}")
    if thresholds.shape != (activations.shape[1],):
        raise ValueError(f"thresholds: expected ({activations.shape[1]},), got {tuple(thresholds.shape)}")
    n = activations.shape[0]
    orders = [torch.arange(n)] + [torch.as_tensor(o, dtype=torch.long) for o in mask_order]
    for o in orders[1:]:
        if sorted(o.tolist()) != list(range(n)):
            raise ValueError(f"mask_order: every order must be a permutation of range({n})")
    masks = (concepts > 0.5).flatten(2).float()                          # (N, C, P); float32 counts are exact
    mask_area = masks.sum(2)                                             # (N, C)   below 2**24 pixels
    inter = torch.zeros(len(orders), n, activations.shape[1], concepts.shape[1], dtype=torch.float64)
    union = torch.zeros_like(inter)
    for start in range(0, n, batch_size):
        rows = torch.arange(start, min(start + batch_size, n))
        fired = firing_maps(activations[rows], thresholds, tuple(concepts.shape[-2:])).flatten(2).float()
        fired_area = fired.sum(2)                                        # (b, K)
        for j, order in enumerate(orders):
            both = torch.bmm(fired, masks[order[rows]].transpose(1, 2))  # (b, K, C)
            inter[j, rows] = both.double()
            union[j, rows] = (fired_area[:, :, None] + mask_area[order[rows]][:, None, :] - both).double()
    return inter, union


def ratio_of_sums(counts: np.ndarray) -> np.ndarray:
    """IoU of resampled images: ``(B, N, 2)`` per-image (intersection, union) -> ``(B,)`` sum / sum.
    The ``statistic`` for :func:`~medxai_lib.evaluate.claims.claim` on per-image IoU counts."""
    counts = np.asarray(counts, dtype=float)
    return counts[..., 0].sum(-1) / np.maximum(counts[..., 1].sum(-1), 1e-12)


def shuffled_order(n: int, seed: int) -> torch.Tensor:
    """A permutation of ``range(n)`` without fixed points (no image keeps its own masks), ``(n,)``."""
    if n < 2:
        raise ValueError(f"n: shuffling masks across images needs at least 2 images, got {n}")
    cycle = np.random.default_rng(seed).permutation(n)     # one random n-cycle: image cycle[i] gets the masks
    order = np.empty(n, dtype=np.int64)                     # of image cycle[i + 1], so none keeps its own
    order[cycle] = np.roll(cycle, -1)
    return torch.as_tensor(order)


def _iou(inter: torch.Tensor, union: torch.Tensor) -> torch.Tensor:
    """Sum over images (dim -3): ``(..., N, K, C)`` -> ``(..., K, C)``."""
    i, u = inter.sum(-3), union.sum(-3)
    return torch.where(u > 0, i / u.clamp_min(1), torch.zeros_like(i)).float()


class NetworkDissection:
    """scikit-learn-style dissection: ``fit(activations, concepts, names)``, then the fitted attributes.

    Args:
        quantile: the top share of activations that counts as "firing" (Bau: 0.005).
        min_iou: a unit detects a concept only above this IoU (Bau: 0.04).
        null_quantile: ... and above this quantile of the concept's null IoUs (0.95).
        n_shuffles: how many shuffles of the masks across images make the null (K units each).
        seed: seeds the shuffles.

    Fitted: ``thresholds_ (K,)``; ``iou_ (K, C)`` and the per-image counts behind it, ``intersections_``
    / ``unions_ (N, K, C)``; the null ``null_iou_ (S, K, C)`` with ``null_intersections_`` /
    ``null_unions_ (S, N, K, C)``; ``null_threshold_ (C,)``; Bau's labels ``best_concept_ (K,)`` (index),
    ``best_iou_ (K,)``; ``detected_ (K,)`` bool; ``concept_area_ (C,)`` (mean share of the image).
    """

    def __init__(self, quantile: float = 0.005, min_iou: float = 0.04, null_quantile: float = 0.95,
                 n_shuffles: int = 4, seed: int = 0, batch_size: int = 64) -> None:
        if not 0 < quantile < 1:
            raise ValueError(f"quantile: expected a share in (0, 1), got {quantile!r}")
        if not 0 < null_quantile < 1:
            raise ValueError(f"null_quantile: expected a share in (0, 1), got {null_quantile!r}")
        if not isinstance(n_shuffles, int) or n_shuffles < 1:
            raise ValueError(f"n_shuffles: expected a positive int, got {n_shuffles!r}")
        self.quantile, self.min_iou, self.null_quantile = quantile, min_iou, null_quantile
        self.n_shuffles, self.seed, self.batch_size = n_shuffles, seed, batch_size

    def fit(self, activations: torch.Tensor, concepts: torch.Tensor, concept_names: Sequence[str] | None = None
            ) -> "NetworkDissection":
        """``activations (N, K, h, w)``, ``concepts (N, C, H, W)`` binary masks (N >= 2)."""
        if activations.ndim != 4 or concepts.ndim != 4 or activations.shape[0] != concepts.shape[0]:
            raise ValueError(f"activations, concepts: expected (N, K, h, w) and (N, C, H, W) with one N, got "
                             f"{tuple(activations.shape)} and {tuple(concepts.shape)}")
        names = list(concept_names) if concept_names is not None else [f"concept{c}" for c in range(concepts.shape[1])]
        if len(names) != concepts.shape[1]:
            raise ValueError(f"concept_names: expected {concepts.shape[1]} names, got {len(names)}")
        self.concept_names_ = names
        self.thresholds_ = unit_thresholds(activations, self.quantile)
        orders = [shuffled_order(len(activations), self.seed + s) for s in range(self.n_shuffles)]
        inter, union = iou_counts(activations, self.thresholds_, concepts, orders, self.batch_size)
        self.intersections_, self.unions_ = inter[0], union[0]
        self.null_intersections_, self.null_unions_ = inter[1:], union[1:]
        self.iou_, self.null_iou_ = _iou(inter[0], union[0]), _iou(inter[1:], union[1:])
        self.null_threshold_ = torch.quantile(self.null_iou_.flatten(0, 1), self.null_quantile, dim=0)
        best = self.iou_.max(1)
        self.best_concept_, self.best_iou_ = best.indices, best.values
        self.detected_ = (self.best_iou_ > self.min_iou) & (self.best_iou_ > self.null_threshold_[self.best_concept_])
        self.concept_area_ = (concepts > 0.5).float().mean((0, 2, 3))
        return self

    def _column(self, concept: str) -> int:
        if concept not in self.concept_names_:
            raise ValueError(f"concept: expected one of {self.concept_names_}, got {concept!r}")
        return self.concept_names_.index(concept)

    def units_for(self, concept: str, top: int | None = None) -> list[int]:
        """Units labelled ``concept`` (their best concept) that detect it (above the null and ``min_iou``),
        best first; ``top`` caps the list."""
        c = self._column(concept)
        chosen = [int(k) for k in self.iou_[:, c].argsort(descending=True)
                  if self.detected_[k] and int(self.best_concept_[k]) == c]
        return chosen[:top] if top else chosen

    def ranked(self, concept: str) -> list[int]:
        """Every unit, by its IoU with ``concept`` (best first), whatever its label."""
        return [int(k) for k in self.iou_[:, self._column(concept)].argsort(descending=True)]

    def concept_units(self) -> list[int]:
        """Every unit that detects some concept (sorted)."""
        return [int(k) for k in torch.nonzero(self.detected_).flatten()]

    def best_concept(self) -> list[tuple[int, str, float]]:
        """For each unit: (unit, its best concept, IoU)."""
        return [(k, self.concept_names_[int(c)], float(v)) for k, (v, c) in enumerate(zip(self.best_iou_, self.best_concept_))]

    def image_counts(self, unit: int, concept: str, shuffled: bool = False) -> np.ndarray:
        """Per-image (intersection, union) of ``unit`` with ``concept``, ``(N, 2)``, for a claim with
        :func:`ratio_of_sums`; ``shuffled``: against the first shuffle of the masks (the null)."""
        c = self._column(concept)
        inter, union = (self.null_intersections_[0], self.null_unions_[0]) if shuffled else (self.intersections_, self.unions_)
        return torch.stack([inter[:, unit, c], union[:, unit, c]], 1).numpy()

    def best_null_unit(self, concept: str) -> int:
        """The unit with the highest IoU against the first shuffle of ``concept``'s masks."""
        return int(self.null_iou_[0, :, self._column(concept)].argmax())

    def summary(self) -> "pandas.DataFrame":
        """One row per concept: its area, the null's threshold, the best IoU of any unit, how many units
        pass ``min_iou`` alone (no label, no null), how many carry its label and how many detect it."""
        import pandas as pd
        rows = {}
        for c, name in enumerate(self.concept_names_):
            units = self.units_for(name)
            rows[name] = {"area (share of image)": round(float(self.concept_area_[c]), 4),
                          f"null {100 * self.null_quantile:g}th pct IoU": round(float(self.null_threshold_[c]), 3),
                          "best IoU (any unit)": round(float(self.iou_[:, c].max()), 3),
                          f"units with IoU > {self.min_iou:g}": int((self.iou_[:, c] > self.min_iou).sum()),
                          "units labelled": int((self.best_concept_ == c).sum()),
                          "detectors": len(units), "detector units": units}
        return pd.DataFrame(rows).T.rename_axis("concept")

    def table(self) -> "pandas.DataFrame":
        import pandas as pd
        return pd.DataFrame(self.iou_.numpy(), columns=self.concept_names_).rename_axis("unit")


def compare_dissections(trained: NetworkDissection, untrained: NetworkDissection, seed: int = 0
                        ) -> "pandas.DataFrame":
    """Did training make the detectors? Per concept: each network's best IoU and detector count, and the
    difference of the best units' IoUs with a 95% bootstrap CI over images (paired)."""
    import pandas as pd
    from medxai_lib.evaluate.claims import claim
    if trained.concept_names_ != untrained.concept_names_:
        raise ValueError("trained, untrained: expected dissections of the same concepts")
    rows = {}
    for name in trained.concept_names_:
        best_t, best_u = trained.ranked(name)[0], untrained.ranked(name)[0]
        result = claim(f"{name} trained vs untrained", trained.image_counts(best_t, name),
                       {"untrained": untrained.image_counts(best_u, name)}, statistic=ratio_of_sums, seed=seed, show=False)
        diff = result.controls[0]
        rows[name] = {"trained: best IoU": round(result.value, 3), "untrained: best IoU": round(diff.value, 3),
                      "difference [95% CI]": format_ci(diff.difference, *diff.difference_ci),
                      "training clearly better": bool(diff.difference_ci[0] > 0),
                      "trained: detectors": len(trained.units_for(name)), "untrained: detectors": len(untrained.units_for(name))}
    return pd.DataFrame(rows).T.rename_axis("concept")


def quantile_verdicts(activations: dict[str, torch.Tensor], concepts: torch.Tensor, concept_names: Sequence[str],
                      quantiles: Sequence[float], tested: Sequence[tuple[str, str]], *, margin: float = 0.02,
                      rim: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None, side_margin: float = 0.05,
                      fitted: dict[str, NetworkDissection] | None = None, seed: int = 0,
                      **kwargs: object) -> tuple["pandas.DataFrame", "pandas.DataFrame"]:
    """The dissection claims' verdicts at every firing share: one row per claim, one column per quantile;
    and the first network's dissection summary at each share (one row per (quantile, concept): the
    null's threshold, the best IoU, the detector count).

    ``activations``: network name -> ``(N, K, h, w)`` (e.g. "trained", "untrained"); ``tested``: (network,
    concept) pairs, each the claim "the network's best unit labelled with the concept (a detector, else the
    unit with the highest IoU) beats the best unit on the masks shuffled across images" (IoU of the images,
    ``margin``). With ``rim = (border (N, 1, H, W), centres (N, 2), select (N,) bool)`` a last row tests the
    first network's border units for one-sidedness (preferred sector chosen on ``select``, tested on the
    other images, mean over units; ``side_margin``). A cell reads ``verdict: value vs control (d
    detectors)``. ``fitted``: network name -> a dissection of that network's activations already fitted with
    these settings at one of ``quantiles``, used there instead of fitting again. ``kwargs`` go to
    :class:`NetworkDissection` (not ``quantile``)."""
    import pandas as pd
    from medxai_lib.evaluate.claims import claim
    if not quantiles or any(not 0 < q < 1 for q in quantiles):
        raise ValueError(f"quantiles: expected shares in (0, 1), got {quantiles!r}")
    if "quantile" in kwargs:
        raise ValueError("kwargs: the quantiles come from `quantiles`, not `quantile`")
    unknown = sorted({net for net, _ in tested} - set(activations))
    if not tested or unknown:
        raise ValueError(f"tested: expected (network, concept) pairs naming {sorted(activations)}, got {list(tested)!r}")
    fitted = dict(fitted or {})
    settings = lambda d: (d.min_iou, d.null_quantile, d.n_shuffles, d.seed)    # noqa: E731
    wanted = settings(NetworkDissection(seed=seed, **kwargs))
    for net, d in fitted.items():
        acts = activations.get(net)
        if (acts is None or not hasattr(d, "iou_") or d.quantile not in quantiles or settings(d) != wanted
                or tuple(d.intersections_.shape[:2]) != tuple(acts.shape[:2])):
            raise ValueError(f"fitted[{net!r}]: expected a dissection of activations[{net!r}] fitted at one of {list(quantiles)} "
                             f"with (min_iou, null_quantile, n_shuffles, seed) = {wanted}")
    first = next(iter(activations))
    table: dict[str, dict[str, str]] = {}
    summaries = []
    for q in quantiles:
        dissections = {net: fitted[net] if net in fitted and fitted[net].quantile == q else
                       NetworkDissection(quantile=q, seed=seed, **kwargs).fit(acts, concepts, concept_names)
                       for net, acts in activations.items()}
        summaries.append(dissections[first].summary().drop(columns="detector units").assign(quantile=q).reset_index())
        column = f"{100 * q:g}%"
        for net, concept in tested:
            d = dissections[net]
            unit = (d.units_for(concept) or d.ranked(concept))[0]
            r = claim(f"{net} {concept} unit at {column}", d.image_counts(unit, concept),
                      {"null": d.image_counts(d.best_null_unit(concept), concept, shuffled=True)},
                      statistic=ratio_of_sums, margin=margin, seed=seed, show=False)
            table.setdefault(f"{net}: a {concept} unit beats the best unit on shuffled masks", {})[column] = (
                f"{r.verdict}: {r.value:.3f} vs {r.controls[0].value:.3f} ({len(d.units_for(concept))} detectors)")
        if rim is not None:
            border, centres, select = rim
            units = dissections[first].units_for("border")
            row = table.setdefault(f"{first}: border units fire on one side of the rim", {})
            if not units:
                row[column] = "no border detector"
                continue
            per_unit = torch.stack([sector_recall(activations[first], dissections[first].thresholds_, border, centres, [u])
                                    for u in units])
            preferred, opposite, _ = side_preference(per_unit, select, reduce="mean")
            r = claim(f"one side at {column}", preferred, {"opposite": opposite}, margin=side_margin, seed=seed, show=False)
            row[column] = f"{r.verdict}: {r.value:.3f} vs {r.controls[0].value:.3f} ({len(units)} detectors)"
    return (pd.DataFrame(table).T.rename_axis("claim (verdict: tested vs strongest control)"),
            pd.concat(summaries, ignore_index=True).set_index(["quantile", "concept"]))


SECTOR_NAMES = ("W-NW", "NW-N", "N-NE", "NE-E", "E-SE", "SE-S", "S-SW", "SW-W")  # from -180 deg (west), image y down


def angular_coverage(activations: torch.Tensor, thresholds: torch.Tensor, border: torch.Tensor,
                     centres: torch.Tensor, units: Iterable[int], n_sectors: int = 8) -> torch.Tensor:
    """Where around the lesion each unit fires on the border: for every unit, the share of its firing
    border pixels in each of ``n_sectors`` angular sectors (image frame, measured from each lesion's
    centre). ``activations (N, K, h, w)``, ``border (N, 1, H, W)``, ``centres (N, 2)`` (x, y in [0, 1]).
    Returns ``(len(units), n_sectors)`` rows summing to 1 (zeros if a unit never fires on a border)."""
    units = list(units)
    size = border.shape[-2:]
    ys, xs = torch.meshgrid((torch.arange(size[0]) + 0.5) / size[0], (torch.arange(size[1]) + 0.5) / size[1], indexing="ij")
    angle = torch.atan2(ys[None] - centres[:, 1, None, None], xs[None] - centres[:, 0, None, None])   # (N, H, W)
    sector = ((angle + np.pi) / (2 * np.pi) * n_sectors).long().clamp(0, n_sectors - 1)
    out = torch.zeros(len(units), n_sectors)
    for row, unit in enumerate(units):
        fired = F.interpolate(activations[:, unit:unit + 1].float(), size=size, mode="bilinear", align_corners=False)[:, 0] \
            > thresholds[unit]
        hits = fired & (border[:, 0] > 0.5)
        counts = torch.bincount(sector[hits], minlength=n_sectors).float()
        out[row] = counts / counts.sum() if counts.sum() > 0 else counts
    return out


def _sectors(size: tuple[int, int], centres: torch.Tensor, n_sectors: int) -> torch.Tensor:
    """Angular sector (0 = from west, counter-clockwise in image coordinates) of every pixel around each
    image's centre: ``(N, H, W)`` long."""
    ys, xs = torch.meshgrid((torch.arange(size[0]) + 0.5) / size[0], (torch.arange(size[1]) + 0.5) / size[1], indexing="ij")
    angle = torch.atan2(ys[None] - centres[:, 1, None, None], xs[None] - centres[:, 0, None, None])
    return ((angle + np.pi) / (2 * np.pi) * n_sectors).long().clamp(0, n_sectors - 1)


def sector_recall(activations: torch.Tensor, thresholds: torch.Tensor, border: torch.Tensor, centres: torch.Tensor,
                  units: Sequence[int], n_sectors: int = 8) -> torch.Tensor:
    """How much of each part of the rim a group of units covers together: per image and sector, the
    share of the border pixels on which at least one of ``units`` fires. ``activations (N, K, h, w)``,
    ``thresholds (K,)``, ``border (N, 1, H, W)``, ``centres (N, 2)`` (x, y in [0, 1]).
    Returns ``(N, n_sectors)`` in [0, 1] (0 where an image has no border pixel in a sector)."""
    units = [int(u) for u in units]
    if not units:
        raise ValueError("units: expected at least one unit")
    if border.ndim != 4 or border.shape[0] != activations.shape[0] or centres.shape != (activations.shape[0], 2):
        raise ValueError(f"border, centres: expected (N, 1, H, W) and (N, 2) with N = {activations.shape[0]}, got "
                         f"{tuple(border.shape)} and {tuple(centres.shape)}")
    n, size = activations.shape[0], tuple(border.shape[-2:])
    fired = firing_maps(activations[:, units], thresholds[units], size).any(1).flatten(1)     # (N, P)
    rim = (border[:, 0] > 0.5).flatten(1)
    bins = (_sectors(size, centres, n_sectors).flatten(1) + n_sectors * torch.arange(n)[:, None])[rim]
    total = torch.bincount(bins, minlength=n * n_sectors).view(n, n_sectors).float()
    hit = torch.bincount(bins[fired[rim]], minlength=n * n_sectors).view(n, n_sectors).float()
    return torch.where(total > 0, hit / total.clamp_min(1), torch.zeros_like(hit))


def side_preference(per_unit_recall: torch.Tensor, select: torch.Tensor, reduce: str = "mean"
                    ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Does each unit fire on one side of the rim? ``per_unit_recall (U, N, S)`` (:func:`sector_recall`
    of each unit alone); each unit's preferred sector is the argmax of its mean over the ``select``
    images (bool ``(N,)``). On the other images, returns the recall in the preferred sector and in the
    opposite one, each ``(N_test,)``: the mean over units (``reduce="mean"``) or the unit whose preference
    is weakest there (``"weakest"``: smallest mean preferred - opposite; "each unit" holds if it holds for
    that one), and the preferred sectors."""
    if reduce not in ("mean", "weakest"):
        raise ValueError(f"reduce: expected 'mean' or 'weakest', got {reduce!r}")
    if per_unit_recall.ndim != 3 or select.shape != (per_unit_recall.shape[1],):
        raise ValueError(f"per_unit_recall, select: expected (U, N, S) and (N,), got {tuple(per_unit_recall.shape)} "
                         f"and {tuple(select.shape)}")
    if per_unit_recall.shape[-1] % 2:
        raise ValueError(f"per_unit_recall: an opposite sector needs an even number of sectors, got {per_unit_recall.shape[-1]}")
    if select.all() or not select.any():
        raise ValueError("select: expected both selection and held-out images")
    n_sectors = per_unit_recall.shape[-1]
    preferred = per_unit_recall[:, select].mean(1).argmax(1)                     # (U,)
    opposite = (preferred + n_sectors // 2) % n_sectors
    held = per_unit_recall[:, ~select]                                           # (U, N_test, S)
    rows = torch.arange(len(preferred))
    tested, control = held[rows, :, preferred], held[rows, :, opposite]             # (U, N_test)
    if reduce == "weakest":
        weakest = int((tested - control).mean(1).argmin())
        return tested[weakest].numpy(), control[weakest].numpy(), preferred.tolist()
    return tested.mean(0).numpy(), control.mean(0).numpy(), preferred.tolist()


def best_single_unit(per_unit_recall: torch.Tensor, select: torch.Tensor, share: float) -> int:
    """Index (into ``per_unit_recall (U, N, S)``) of the unit that alone covers the most sectors with mean
    recall >= ``share`` on the ``select`` images (ties: the larger total recall): the strongest single-unit
    control for "together the units cover more of the rim"."""
    if per_unit_recall.ndim != 3 or select.shape != (per_unit_recall.shape[1],) or not select.any():
        raise ValueError(f"per_unit_recall, select: expected (U, N, S) and a non-empty bool (N,), got "
                         f"{tuple(per_unit_recall.shape)} and {tuple(select.shape)}")
    means = per_unit_recall[:, select].mean(1)                                    # (U, S)
    covered = (means >= share).sum(1).double()
    return int((covered + means.sum(1).double() / (means.shape[1] + 1)).argmax())


def sectors_covered(share: float) -> Callable[[np.ndarray], np.ndarray]:
    """A claim statistic: ``(B, N, S)`` per-image sector recall -> ``(B,)`` the number of sectors whose
    mean recall over the resampled images reaches ``share``."""
    def statistic(samples: np.ndarray) -> np.ndarray:
        return (np.asarray(samples).mean(-2) >= share).sum(-1).astype(float)
    return statistic


def mean_ci(values: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``(N,)`` values and its percentile-bootstrap 95% CI, ``(mean, lo, hi)``: a thin wrapper of
    :func:`medxai_lib.evaluate.stats.bootstrap`."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"values: expected a non-empty (N,) array, got shape {values.shape}")
    estimate = bootstrap(values, n_boot=n_boot, seed=seed)
    return estimate.value, estimate.lo, estimate.hi


def ablation_table(effects: dict, random: dict, subsets: dict | None = None, seed: int = 0) -> "pandas.DataFrame":
    """One row per group: mean |ΔP| and signed ΔP with 95% CIs over images, for the group and for its
    random draws (per image, the mean over draws), on each image subset (name -> bool ``(N,)``).
    ``effects``: name -> ``(N,)``; ``random``: name -> ``(R, N)``. Cells are ``"mean [lo, hi]"`` strings
    (:func:`~medxai_lib.evaluate.stats.format_ci`)."""
    import pandas as pd

    def cell(values: np.ndarray) -> str:
        return str(bootstrap(values, seed=seed))

    n = len(next(iter(effects.values())))
    subsets = {"all": np.ones(n, bool)} if subsets is None else {k: np.asarray(v, bool) for k, v in subsets.items()}
    rows = {}
    for name, tested in effects.items():
        tested, draws = np.asarray(tested, float), np.asarray(random[name], float)
        row = {"|ΔP| units": cell(np.abs(tested)), "|ΔP| random": cell(np.abs(draws).mean(0))}
        for subset, keep in subsets.items():
            row[f"ΔP units ({subset})"] = cell(tested[keep])
            row[f"ΔP random ({subset})"] = cell(draws[:, keep].mean(0))
        rows[name] = row
    return pd.DataFrame(rows).T.rename_axis("group (ΔP of P(malignant))")


def ablation_ranks(effects: dict, random: dict) -> "pandas.DataFrame":
    """Where each ablated group stands among its control groups: mean |ΔP| of the group, the number of
    control groups (draws), the share of them with a smaller mean |ΔP| (its percentile among all draws) and
    the largest control. ``effects``: name -> ``(N,)``; ``random``: name -> ``(R, N)``."""
    import pandas as pd
    rows = {}
    for name, tested in effects.items():
        tested, draws = np.abs(np.asarray(tested, float)).mean(), np.abs(np.asarray(random[name], float)).mean(1)
        rows[name] = {"mean |ΔP| of the group": round(float(tested), 3), "control groups": len(draws),
                      "share of control groups below it": round(float((draws < tested).mean()), 3),
                      "largest control group": round(float(draws.max()), 3)}
    return pd.DataFrame(rows).T.rename_axis("group")
