"""Checked claims that can fail: the thing under test against its controls, with bootstrap CIs.

A **claim** compares one statistic of the thing under test with the same statistic of one or more
*controls* (a trivial baseline, a null model, randomised weights, permuted labels or masks, an independent
model). Values are given per natural unit (image, study, lesion): ``(N,)`` or ``(N, d)`` arrays that a
``statistic`` turns into one number. Paired controls (same units, same order) are resampled with the
tested values; unpaired ones independently. The claim holds only when, against *every* control, the
bootstrap 95% CI of the difference lies beyond the ``margin`` (so it also excludes 0). The control that
comes closest is reported as the strongest. One line is printed::

    CLAIM <sentence> | <value> [lo, hi] vs <control> <value> [lo, hi] | holds: True

An algebraic fact is an :func:`identity`, shown beside the case that breaks it; a claim that cannot be
evaluated prints a :func:`skipped` line with the reason. :func:`parse_line` reads all three back
(``scripts/claims_across_seeds.py`` and the notebook tests use it).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

Statistic = Callable[[np.ndarray], np.ndarray]
DIRECTIONS = ("greater", "less")


def mean_statistic(samples: np.ndarray) -> np.ndarray:
    """Mean over units: ``(B, N)`` or ``(B, N, d)`` -> ``(B,)`` (``(B, d)`` means are averaged too)."""
    return samples.reshape(samples.shape[0], -1).mean(1) if samples.ndim > 2 else samples.mean(1)


def fmt(value: float) -> str:
    """Three decimals for ordinary magnitudes, scientific notation for tiny or huge ones."""
    if not math.isfinite(value):
        return str(value)
    return f"{value:.3f}" if value == 0 or 1e-3 <= abs(value) < 1e4 else f"{value:.2e}"


def _check_values(name: str, values: object) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim not in (1, 2) or len(array) == 0:
        raise ValueError(f"{name}: expected a non-empty (N,) or (N, d) array of per-unit values, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: contains NaN or inf ({int((~np.isfinite(array)).sum())} of {array.size} values)")
    return array


def _percentile_ci(draws: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    lo, hi = np.quantile(draws, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


@dataclass(frozen=True)
class ControlResult:
    """One control: its statistic and CI, and the tested-minus-control difference with its CI."""
    name: str
    value: float
    ci: tuple[float, float]
    difference: float
    difference_ci: tuple[float, float]
    paired: bool


@dataclass(frozen=True)
class ClaimResult:
    """The outcome of :func:`claim`; ``str()`` is the ``CLAIM …`` line."""
    sentence: str
    value: float
    ci: tuple[float, float]
    controls: tuple[ControlResult, ...]
    direction: str
    margin: float
    n_units: int

    @property
    def strongest(self) -> ControlResult:
        """The control whose difference CI comes closest to the margin (the hardest to beat)."""
        if self.direction == "greater":
            return min(self.controls, key=lambda c: c.difference_ci[0])
        return max(self.controls, key=lambda c: c.difference_ci[1])

    @property
    def holds(self) -> bool:
        lo, hi = self.strongest.difference_ci
        return bool(lo > self.margin) if self.direction == "greater" else bool(hi < -self.margin)

    def line(self) -> str:
        c = self.strongest
        text = self.sentence + (f" (margin {fmt(self.margin)})" if self.margin > 0 else "")
        return (f"CLAIM {text} | {fmt(self.value)} [{fmt(self.ci[0])}, {fmt(self.ci[1])}] vs {c.name} "
                f"{fmt(c.value)} [{fmt(c.ci[0])}, {fmt(c.ci[1])}] | holds: {self.holds}")

    __str__ = line

    def table(self) -> list[dict[str, object]]:
        """One row per control, for a comparison shown but *not* claimed (it failed on some seeds): the
        tested value, the control's, the difference with its 95% CI and whether it clears the margin.
        ``pd.DataFrame(result.table())`` displays it."""
        return [{"tested": f"{fmt(self.value)} [{fmt(self.ci[0])}, {fmt(self.ci[1])}]",
                 "control": c.name, "control value": f"{fmt(c.value)} [{fmt(c.ci[0])}, {fmt(c.ci[1])}]",
                 "difference": f"{fmt(c.difference)} [{fmt(c.difference_ci[0])}, {fmt(c.difference_ci[1])}]",
                 f"beyond the margin {fmt(self.margin)}": bool(c.difference_ci[0] > self.margin)
                 if self.direction == "greater" else bool(c.difference_ci[1] < -self.margin)}
                for c in self.controls]


def claim(sentence: str, tested: object, controls: Mapping[str, object], *, direction: str = "greater",
          margin: float = 0.0, statistic: Statistic = mean_statistic, paired: bool | Mapping[str, bool] = True,
          n_boot: int = 2000, seed: int = 0, show: bool = True) -> ClaimResult:
    """Check that ``statistic(tested)`` beats every control's by more than ``margin``.

    Args:
        sentence: what is claimed, in words (the key under which ``make claims`` tracks it).
        tested: per-unit values ``(N,)`` or ``(N, d)`` of the thing under test.
        controls: name -> per-unit values of a control (same shape rules). At least one.
        direction: ``"greater"`` (tested must be larger) or ``"less"``.
        margin: how far beyond the strongest control the difference's CI must lie (>= 0).
        statistic: ``(B, N[, d]) -> (B,)``, vectorised over bootstrap draws; the mean by default.
        paired: whether a control is measured on the same units in the same order (then units are
            resampled jointly); one bool for all controls or a mapping name -> bool.
        n_boot: bootstrap draws (percentile 95% CIs); ``seed`` makes them reproducible.
        show: print the ``CLAIM`` line.
    Returns: :class:`ClaimResult`.
    """
    if not isinstance(sentence, str) or not sentence.strip() or "|" in sentence or "\n" in sentence:
        raise ValueError(f"sentence: expected one line of text without '|', got {sentence!r}")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction: expected one of {DIRECTIONS}, got {direction!r}")
    if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin: expected a finite number >= 0, got {margin!r}")
    if not isinstance(n_boot, int) or n_boot < 100:
        raise ValueError(f"n_boot: expected an integer >= 100, got {n_boot!r}")
    if not isinstance(controls, Mapping) or len(controls) == 0:
        raise ValueError("controls: expected a mapping name -> per-unit values with at least one control; "
                         "a claim without a control cannot fail")
    x = _check_values("tested", tested)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    x_draws = np.asarray(statistic(x[idx]), dtype=float)
    if x_draws.shape != (n_boot,):
        raise ValueError(f"statistic: expected (B, N[, d]) -> (B,), got output shape {x_draws.shape}")
    x_value = float(np.asarray(statistic(x[None]), dtype=float)[0])
    results = []
    for name, values in controls.items():
        y = _check_values(f"controls[{name!r}]", values)
        is_paired = paired.get(name, True) if isinstance(paired, Mapping) else bool(paired)
        if is_paired and y.shape[0] != x.shape[0]:
            raise ValueError(f"controls[{name!r}]: a paired control needs one value per tested unit ({len(x)}), "
                             f"got {len(y)}; pass paired={{{name!r}: False}} for an independent sample")
        y_idx = idx if is_paired else rng.integers(0, len(y), size=(n_boot, len(y)))
        y_draws = np.asarray(statistic(y[y_idx]), dtype=float)
        y_value = float(np.asarray(statistic(y[None]), dtype=float)[0])
        diff = x_draws - y_draws
        results.append(ControlResult(str(name), y_value, _percentile_ci(y_draws), x_value - y_value,
                                     _percentile_ci(diff), is_paired))
    result = ClaimResult(sentence.strip(), x_value, _percentile_ci(x_draws), tuple(results), direction,
                         float(margin), len(x))
    if show:
        print(result.line())
    return result


@dataclass(frozen=True)
class IdentityResult:
    """The outcome of :func:`identity`; ``str()`` is the ``IDENTITY …`` line."""
    sentence: str
    gap: float
    tolerance: float
    broken_by: str
    broken_gap: float

    @property
    def holds(self) -> bool:
        """The gap is within tolerance, and the breaking case really breaks it (else the check is vacuous)."""
        return bool(self.gap <= self.tolerance < self.broken_gap)

    def line(self) -> str:
        return (f"IDENTITY {self.sentence} | gap {fmt(self.gap)} | broken by {self.broken_by}: gap "
                f"{fmt(self.broken_gap)} | holds: {self.holds}")

    __str__ = line


def identity(sentence: str, gap: float, broken_by: str, broken_gap: float, tolerance: float = 1e-4,
             show: bool = True) -> IdentityResult:
    """An algebraic fact: ``gap`` (e.g. a max abs difference) must be <= ``tolerance``, and the case named
    ``broken_by``, where the identity's assumption is violated, must give ``broken_gap > tolerance``."""
    for name, value in (("gap", gap), ("broken_gap", broken_gap), ("tolerance", tolerance)):
        if not isinstance(value, (int, float, np.floating)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    for name, text in (("sentence", sentence), ("broken_by", broken_by)):
        if not isinstance(text, str) or not text.strip() or "|" in text or "\n" in text:
            raise ValueError(f"{name}: expected one line of text without '|', got {text!r}")
    result = IdentityResult(sentence.strip(), float(gap), float(tolerance), broken_by.strip(), float(broken_gap))
    if show:
        print(result.line())
    return result


def skipped(sentence: str, reason: str, show: bool = True) -> str:
    """The line for a claim that cannot be evaluated here (e.g. real data without masks)."""
    for name, text in (("sentence", sentence), ("reason", reason)):
        if not isinstance(text, str) or not text.strip() or "|" in text or "\n" in text:
            raise ValueError(f"{name}: expected one line of text without '|', got {text!r}")
    line = f"SKIPPED {sentence.strip()} | {reason.strip()}"
    if show:
        print(line)
    return line


_NUMBER = r"(-?[\d.]+(?:e[-+]?\d+)?|nan|inf|-inf)"
_CLAIM = re.compile(rf"^CLAIM (?P<sentence>.+?) \| (?P<value>{_NUMBER}) \[{_NUMBER}, {_NUMBER}\] vs "
                    rf"(?P<control>.+) (?P<control_value>{_NUMBER}) \[{_NUMBER}, {_NUMBER}\] \| holds: (?P<holds>True|False)$")
_IDENTITY = re.compile(rf"^IDENTITY (?P<sentence>.+?) \| gap (?P<value>{_NUMBER}) \| broken by (?P<control>.+): gap "
                       rf"(?P<control_value>{_NUMBER}) \| holds: (?P<holds>True|False)$")
_SKIPPED = re.compile(r"^SKIPPED (?P<sentence>.+?) \| (?P<reason>.+)$")


def parse_line(line: str) -> dict[str, str] | None:
    """``{"kind", "sentence", "value", "control", "control_value", "holds"}`` for a CLAIM / IDENTITY line,
    ``{"kind": "SKIPPED", "sentence", "reason"}`` for a skip, ``None`` for anything else."""
    line = line.rstrip()
    for kind, pattern in (("CLAIM", _CLAIM), ("IDENTITY", _IDENTITY), ("SKIPPED", _SKIPPED)):
        match = pattern.match(line)
        if match:
            return {"kind": kind, **{k: v for k, v in match.groupdict().items() if v is not None}}
    return None
