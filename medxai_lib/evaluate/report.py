"""Every method on the same images, scored by every metric: the table behind notebook 04 (cached maps, scores and
the method report)."""
from __future__ import annotations

import time
from typing import Any, Callable

import torch
from torch import nn

from medxai_lib.evaluate.baselines import random_maps
from medxai_lib.evaluate.faithfulness import deletion_insertion
from medxai_lib.evaluate.localisation import auprc, defined_mean, empty_masks, energy_in_mask, pointing_game, topk_iou
from medxai_lib.evaluate.robustness import sparseness
from medxai_lib.explain.registry import METHODS, as_heatmap, attribute


def method_report(model: nn.Module, images: torch.Tensor, masks: torch.Tensor, targets: torch.Tensor,
                  methods: dict[str, dict[str, Any]], tolerance: int = 0, n_steps: int = 20, top_k: float = 0.05,
                  seed: int = 0) -> tuple["pandas.DataFrame", dict[str, torch.Tensor]]:
    """Run each method (name -> keyword arguments, e.g. ``{"grad_cam": {"layer": "features"}}``) on
    ``images (B, C, H, W)`` for ``targets (B,)`` and score its ``(B, H, W)`` heatmap against ``masks
    (B, 1, H, W)``: pointing game, energy in mask, top-k IoU, AUPRC, deletion and insertion AUC,
    sparseness and wall time. A ``"random"`` row gives the chance level. Returns (table, heatmaps).

    Localisation metrics are undefined for an image with an empty mask: such images are left out of
    those four columns (all methods alike, one denominator), and a column ``images left out (empty
    mask)`` says how many when there are any. Faithfulness and sparseness use every image."""
    import pandas as pd
    if not isinstance(methods, dict):
        raise TypeError(f"methods: expected a dict of method name -> keyword arguments (e.g. "
                        f"{{'grad_cam': {{'layer': 'features'}}}}), got {type(methods).__name__} {methods!r}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"methods: unknown {unknown}; valid methods: {', '.join(sorted(METHODS))}")
    size = images.shape[-2:]
    heatmaps: dict[str, torch.Tensor] = {}
    seconds: dict[str, float] = {}
    for name, kwargs in methods.items():
        start = time.perf_counter()
        output = attribute(model, images, name, classes=targets, **kwargs)
        seconds[name] = time.perf_counter() - start
        heatmaps[name] = as_heatmap(output.detach(), tuple(size))[:, 0].cpu()
    heatmaps["random"] = random_maps(images.shape[0], tuple(size), seed)
    seconds["random"] = 0.0
    n_empty = int(empty_masks(masks).sum())
    rows = []
    for name, heat in heatmaps.items():
        maps = heat[:, None]
        _, deletion = deletion_insertion(model, images, heat.to(images.device), targets, "deletion", n_steps)
        _, insertion = deletion_insertion(model, images, heat.to(images.device), targets, "insertion", n_steps)
        row = {"method": name, "family": METHODS[name].family if name in METHODS else "baseline",
               "pointing game": defined_mean(pointing_game(maps, masks, tolerance)),
               "energy in mask": defined_mean(energy_in_mask(maps, masks)),
               "top-k IoU": defined_mean(topk_iou(maps, masks, top_k)),
               "AUPRC": auprc(maps, masks).nanmean().item(),
               "deletion AUC": deletion.mean().item(), "insertion AUC": insertion.mean().item(),
               "sparseness": sparseness(heat).mean().item(), "seconds": seconds[name]}
        if n_empty:
            row["images left out (empty mask)"] = n_empty
        rows.append(row)
    return pd.DataFrame(rows).set_index("method"), heatmaps


def compute_maps(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, methods: dict[str, dict[str, Any]],
                 batch_size: int = 12) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Run every method once on ``images (B, C, H, W)`` for ``targets (B,)``, ``batch_size`` images at a time
    (methods that batch noisy copies or integration steps otherwise hold all of them in memory at once):
    name -> ``(B, H, W)`` maps at image resolution on the CPU (layer maps upsampled bilinearly, signed input
    maps summed over channels), and name -> wall seconds."""
    if not isinstance(methods, dict) or not methods:
        raise ValueError(f"methods: expected a non-empty dict name -> keyword arguments, got {methods!r}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"methods: unknown {unknown}; valid methods: {', '.join(sorted(METHODS))}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    targets = torch.as_tensor(targets)
    size = tuple(images.shape[-2:])
    maps, seconds = {}, {}
    for name, kwargs in methods.items():
        start = time.perf_counter()
        parts = [as_heatmap(attribute(model, images[i:i + batch_size], name, classes=targets[i:i + batch_size],
                                      **kwargs).detach(), size)[:, 0].cpu() for i in range(0, len(images), batch_size)]
        seconds[name] = time.perf_counter() - start
        maps[name] = torch.cat(parts)
    return maps, seconds


_MAP_SOURCES = ("explain/*.py", "models/*.py", "evaluate/report.py", "evaluate/scoreboard.py", "evaluate/baselines.py",
                "evaluate/faithfulness.py", "evaluate/localisation.py", "evaluate/robustness.py", "evaluate/sanity.py")


def library_digest(patterns: tuple[str, ...] = _MAP_SOURCES) -> str:
    """Short hash of the library source files that make and score maps (glob ``patterns`` under the
    package): part of every cache key below, so cached results are recomputed whenever that code changes."""
    import hashlib
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for pattern in patterns:
        for path in sorted(root.glob(pattern)):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def tensor_digest(*tensors: torch.Tensor) -> str:
    """Short hash of tensors' shapes and bytes (e.g. the evaluation images) for a cache key."""
    import hashlib
    digest = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        digest.update(str((tuple(t.shape), str(t.dtype))).encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()[:16]


def cached(name: str, key: dict[str, Any], compute: Callable[[], Any], enabled: bool = True) -> tuple[Any, bool]:
    """``compute()`` once per ``key`` (a JSON-able dict; the library digest is added): the result is pickled
    under ``cache_dir()/results/<name>-<hash>.pt`` and loaded on the next call. Returns ``(result, from_cache)``.
    ``enabled=False`` always computes (and stores nothing)."""
    from medxai_lib.runtime import atomic_write, cache_dir, config_hash
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name: expected an identifier-like string, got {name!r}")
    if not enabled:
        return compute(), False
    path = cache_dir() / "results" / f"{name}-{config_hash({**key, 'library': library_digest()})}.pt"
    if path.exists():
        return torch.load(path, weights_only=False), True
    result = compute()
    atomic_write(path, lambda tmp: torch.save(result, tmp))
    return result, False


def heatmap_fn(method: str, size: tuple[int, int], classes: Any = 0, **kwargs: Any
               ) -> Callable[[nn.Module, torch.Tensor], torch.Tensor]:
    """``explain(model, images) -> (B, H, W)``: one method's heatmap for ``classes`` at image size, for
    tests that call a method on many models (e.g. :func:`medxai_lib.evaluate.sanity.randomisation_test`)."""
    if method not in METHODS:
        raise ValueError(f"method: unknown {method!r}; valid methods: {', '.join(sorted(METHODS))}")

    def explain(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return as_heatmap(attribute(model, images, method, classes=classes, **kwargs).detach(), tuple(size))[:, 0]
    return explain
