"""Unit ablation: the causal test for feature-map explanations (switch units off, watch the output).

A group of units is compared with *random* groups of the same size drawn from the units that are not
under test (:func:`ablate_groups_vs_random`; every such group when there are few, :func:`unit_groups`): the
control answers "would any units of this layer do that?". Units are switched off by zero (the usual
ablation) or by their mean activation (a ``(K,)`` fill value, e.g. the layer's activations averaged over
images and positions), which keeps the layer's typical input to the
next one and so separates "these units" from "fewer units". :func:`rank_units` scores every unit by
single-unit ablation, to pick units for a held-out test.
"""
from __future__ import annotations

import itertools
import math

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from medxai_lib.models.inference import INFERENCE_BATCH, fast_forward
from medxai_lib.explain.capture import LayerSpec, check_images, explaining, resolve_layer


@contextmanager
def ablate_units(model: nn.Module, layer: LayerSpec, units: Sequence[int],
                 value: float | torch.Tensor = 0.0) -> Iterator[None]:
    """Within the block, ``layer``'s output channels ``units`` are replaced by ``value``: one number, or one
    per channel of the layer ``(K,)`` (e.g. each channel's mean activation: mean ablation). The hook is removed
    afterwards (also on error); weights are never touched."""
    name, module = resolve_layer(model, layer)
    units = [int(u) for u in units]
    per_unit = torch.as_tensor(value, dtype=torch.float32) if isinstance(value, torch.Tensor) else None
    if per_unit is not None and per_unit.ndim != 1:
        raise ValueError(f"value: expected a number or one value per channel (K,), got shape {tuple(per_unit.shape)}")

    def hook(_m: nn.Module, _i: tuple, output: torch.Tensor) -> torch.Tensor:
        if units and max(units) >= output.shape[1]:
            raise ValueError(f"units: {max(units)} out of range for {name!r} with {output.shape[1]} channels")
        output = output.clone()
        if per_unit is None:
            output[:, units] = value
        else:
            if len(per_unit) != output.shape[1]:
                raise ValueError(f"value: {len(per_unit)} per-channel values for {name!r} with {output.shape[1]} channels")
            output[:, units] = per_unit[units].to(output).view(1, -1, *([1] * (output.ndim - 2)))
        return output

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _probabilities(logits: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, 1)


def ablation_effect(model: nn.Module, images: torch.Tensor, layer: LayerSpec, units: Sequence[int], target: int,
                    batch_size: int = INFERENCE_BATCH) -> torch.Tensor:
    """Change of the ``target`` class probability per image when ``units`` are ablated, ``(N,)``
    (negative = the units supported the class)."""
    check_images(model, images)
    with explaining(model), torch.no_grad(), fast_forward(model) as run:
        before = torch.cat([_probabilities(run(p))[:, target] for p in images.split(batch_size)])
        with ablate_units(model, layer, units):
            after = torch.cat([_probabilities(run(p))[:, target] for p in images.split(batch_size)])
    return after - before


def random_units(n_units: int, count: int, exclude: Sequence[int] = (), seed: int = 0) -> list[int]:
    """``count`` distinct units drawn from ``range(n_units)`` minus ``exclude`` (a control group)."""
    pool = np.setdiff1d(np.arange(n_units), np.asarray(list(exclude), dtype=int))
    if count > len(pool):
        raise ValueError(f"count: {count} units requested but only {len(pool)} are left after excluding {len(exclude)}")
    return sorted(np.random.default_rng(seed).choice(pool, size=count, replace=False).tolist())


def ablation_effects(model: nn.Module, images: torch.Tensor, layer: LayerSpec, groups: Sequence[Sequence[int]],
                     target: int, batch_size: int = INFERENCE_BATCH, value: float | torch.Tensor = 0.0) -> torch.Tensor:
    """Signed change of the ``target`` class probability per image for each group of units ablated
    together: ``(G, N)`` (row g: ``groups[g]`` replaced by ``value``, 0 or per-channel means; negative = the
    units supported the class). The unablated output is computed once for all groups; forwards go through
    :func:`~medxai_lib.models.inference.fast_forward`."""
    check_images(model, images)
    if len(groups) == 0:
        raise ValueError("groups: expected at least one group of units")
    with explaining(model), torch.no_grad(), fast_forward(model) as run:
        before = torch.cat([_probabilities(run(p))[:, target] for p in images.split(batch_size)])
        rows = []
        for units in groups:
            with ablate_units(model, layer, units, value):
                rows.append(torch.cat([_probabilities(run(p))[:, target] for p in images.split(batch_size)]) - before)
    return torch.stack(rows)


def random_unit_draws(n_units: int, count: int, n_draws: int, exclude: Sequence[int] = (), seed: int = 0
                      ) -> list[list[int]]:
    """``n_draws`` independent draws of :func:`random_units` (seeds ``seed``, ``seed + 1``, ...)."""
    if not isinstance(n_draws, int) or n_draws < 1:
        raise ValueError(f"n_draws: expected a positive int, got {n_draws!r}")
    return [random_units(n_units, count, exclude, seed + i) for i in range(n_draws)]


def unit_groups(n_units: int, count: int, n_draws: int, exclude: Sequence[int] = (), seed: int = 0
                ) -> list[list[int]]:
    """The control groups of ``count`` units from ``range(n_units)`` minus ``exclude``: **every** such group
    when there are at most ``n_draws`` of them (in lexicographic order), else ``n_draws`` distinct groups drawn
    at random (seeded). Each group is one draw of the control."""
    if not isinstance(n_draws, int) or n_draws < 1:
        raise ValueError(f"n_draws: expected a positive int, got {n_draws!r}")
    pool = [int(u) for u in np.setdiff1d(np.arange(n_units), np.asarray(list(exclude), dtype=int))]
    if not 1 <= count <= len(pool):
        raise ValueError(f"count: {count} units requested but {len(pool)} are left after excluding {len(exclude)}")
    if math.comb(len(pool), count) <= n_draws:
        return [list(g) for g in itertools.combinations(pool, count)]
    rng, seen = np.random.default_rng(seed), set()
    while len(seen) < n_draws:
        seen.add(tuple(sorted(int(u) for u in rng.choice(pool, size=count, replace=False))))
    return [list(g) for g in sorted(seen)]


@dataclass
class GroupAblation:
    """Per-image effects of ablating each named group, ``effects[name] (N,)``, and of its size-matched
    random draws, ``random[name] (R, N)``; ``draws[name]`` lists the random groups' units."""
    effects: dict[str, torch.Tensor]
    random: dict[str, torch.Tensor]
    draws: dict[str, list[list[int]]]


def ablate_groups_vs_random(model: nn.Module, images: torch.Tensor, layer: LayerSpec, groups: Mapping[str, Sequence[int]],
                            n_units: int, exclude: Sequence[int], n_draws: int, target: int, seed: int = 0,
                            batch_size: int = INFERENCE_BATCH, value: float | torch.Tensor = 0.0,
                            every_group: bool = False) -> GroupAblation:
    """Ablate each group (its units together, replaced by ``value``: 0, or per-channel means for mean
    ablation) and, for each group size, ``n_draws`` random groups of that size drawn from ``range(n_units)``
    minus ``exclude`` (the same draws for groups of the same size); ``every_group=True`` takes every such group
    when there are at most ``n_draws`` (:func:`unit_groups`). Empty groups are refused. One forward pass per
    group and per draw over ``images (N, C, H, W)``."""
    if any(len(units) == 0 for units in groups.values()):
        raise ValueError(f"groups: every group needs at least one unit, got sizes { {k: len(v) for k, v in groups.items()} }")
    sizes = sorted({len(units) for units in groups.values()})
    draw = unit_groups if every_group else random_unit_draws
    by_size = {size: draw(n_units, size, n_draws, exclude, seed + 1000 * size) for size in sizes}
    names = list(groups)
    flat = [list(groups[n]) for n in names] + [g for size in sizes for g in by_size[size]]
    effects = ablation_effects(model, images, layer, flat, target, batch_size, value).cpu()
    starts = np.cumsum([len(names)] + [len(by_size[size]) for size in sizes])
    random_rows = {size: effects[starts[i]:starts[i + 1]] for i, size in enumerate(sizes)}
    return GroupAblation({n: effects[i] for i, n in enumerate(names)},
                         {n: random_rows[len(groups[n])] for n in names}, {n: by_size[len(groups[n])] for n in names})


def rank_units(model: nn.Module, images: torch.Tensor, layer: LayerSpec, n_units: int, target: int,
               signed: bool = False, batch_size: int = INFERENCE_BATCH) -> torch.Tensor:
    """Mean change of the ``target`` probability when each unit alone is ablated, ``(n_units,)``: its
    absolute value per image (``signed=False``) or the signed change (negative: the unit supports the
    class). One forward pass per unit."""
    effects = ablation_effects(model, images, layer, [[k] for k in range(n_units)], target, batch_size)
    return (effects if signed else effects.abs()).mean(1)
