"""Checked claims that can fail: the thing under test against every control, with a verdict.

A **claim** compares one statistic of the thing under test with the same statistic of every *control*
the notebook computes for it (a trivial baseline, a null model, randomised weights, permuted labels or
masks, an independent model). Values are given per natural unit (image, study, lesion): ``(N,)`` or
``(N, d)`` arrays that a ``statistic`` turns into one number; where the tested thing or a control is
itself random (model seeds, generator seeds, random unit groups, refits on permuted labels) pass
:class:`~medxai_lib.evaluate.stats.Draws` ``(S, N[, d])`` and the bootstrap resamples draws x units
(:mod:`medxai_lib.evaluate.stats`). Paired controls (same units, same order) are resampled with the
tested values; unpaired ones independently.

The **verdict** comes from the 95% CI of the difference tested - control, against ``margin``
(direction ``"greater"``; mirrored for ``"less"``):

* ``holds`` - against every control the CI lies beyond the margin;
* ``refuted`` - against some control the CI lies entirely short of the margin (that control is as good,
  or better: a finding, printed and taught);
* ``inconclusive`` - otherwise (some CI contains the margin): collect more units, or state the claim so
  that the data decide it. A committed notebook prints none.

The control that decides the verdict is reported as the strongest. One line is printed::

    CLAIM <sentence> | <value> [lo, hi] vs <control> <value> [lo, hi] | verdict: holds

An algebraic fact is an :func:`identity`, shown beside the case that breaks it; a claim that cannot be
evaluated prints a :func:`skipped` line with the reason. :func:`parse_line` reads all three back
(``scripts/claims_across_seeds.py`` and the notebook tests use it).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from medxai_lib.evaluate.stats import (Draws, Resampler, Statistic, as_draws, fmt, format_ci, mean_statistic,
                                       percentile_ci, point_value, replicates)

DIRECTIONS = ("greater", "less")
VERDICTS = ("holds", "refuted", "inconclusive")

__all__ = ["ClaimResult", "ControlResult", "DIRECTIONS", "Draws", "IdentityResult", "VERDICTS", "checked_results", "claim",
           "fmt", "identity", "mean_statistic", "parse_line", "skipped"]


@dataclass(frozen=True)
class ControlResult:
    """One control: its statistic and CI, and the tested-minus-control difference with its CI."""
    name: str
    value: float
    ci: tuple[float, float]
    difference: float
    difference_ci: tuple[float, float]
    paired: bool
    n_draws: int = 1


def _verdict_against(control: ControlResult, direction: str, margin: float) -> str:
    lo, hi = control.difference_ci
    if direction == "greater":
        return "holds" if lo > margin else "refuted" if hi < margin else "inconclusive"
    return "holds" if hi < -margin else "refuted" if lo > -margin else "inconclusive"


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
    n_draws: int = 1

    def verdict_against(self, control: ControlResult) -> str:
        """``holds`` / ``refuted`` / ``inconclusive`` against one control."""
        return _verdict_against(control, self.direction, self.margin)

    @property
    def verdict(self) -> str:
        """``refuted`` if any control refutes it, ``holds`` if every control is beaten, else ``inconclusive``."""
        verdicts = {self.verdict_against(c) for c in self.controls}
        return "refuted" if "refuted" in verdicts else "holds" if verdicts == {"holds"} else "inconclusive"

    @property
    def strongest(self) -> ControlResult:
        """The control that decides the verdict: the one that refutes the claim most clearly, else the one
        whose difference CI comes closest to the margin."""
        sign = 1.0 if self.direction == "greater" else -1.0
        refuting = [c for c in self.controls if self.verdict_against(c) == "refuted"]
        if refuting:    # the clearest refutation: its CI's far end lies furthest short of the margin
            return min(refuting, key=lambda c: c.difference_ci[1] if sign > 0 else -c.difference_ci[0])
        return min(self.controls, key=lambda c: c.difference_ci[0] if sign > 0 else -c.difference_ci[1])

    @property
    def holds(self) -> bool:
        return self.verdict == "holds"

    def line(self) -> str:
        c = self.strongest
        text = self.sentence + (f" (margin {fmt(self.margin)})" if self.margin > 0 else "")
        return (f"CLAIM {text} | {format_ci(self.value, *self.ci)} vs {c.name} {format_ci(c.value, *c.ci)} "
                f"| verdict: {self.verdict}")

    __str__ = line


def claim(sentence: str, tested: object, controls: Mapping[str, object], *, direction: str = "greater",
          margin: float = 0.0, statistic: Statistic = mean_statistic, paired: bool | Mapping[str, bool] = True,
          n_boot: int = 2000, seed: int = 0, show: bool = True) -> ClaimResult:
    """Compare ``statistic(tested)`` with every control's and give the verdict (module docstring).

    Args:
        sentence: what is claimed, in words (the key under which ``make claims`` tracks it).
        tested: per-unit values ``(N,)`` / ``(N, d)``, or :class:`Draws` ``(S, N[, d])`` when the tested
            thing is itself random (several model seeds, ...).
        controls: name -> per-unit values or :class:`Draws` of a control. At least one.
        direction: ``"greater"`` (tested must be larger) or ``"less"``.
        margin: how far beyond every control the difference's CI must lie (>= 0).
        statistic: ``(B, N[, d]) -> (B,)``, vectorised over bootstrap replicates; the mean by default.
            With draws it is computed per draw and averaged over draws.
        paired: whether a control is measured on the same units in the same order (then units are
            resampled jointly); one bool for all controls or a mapping name -> bool. Draws with the same
            ``over`` and number of draws as the tested ones are paired on draws as well.
        n_boot: bootstrap replicates (percentile 95% CIs); ``seed`` makes them reproducible.
        show: print the ``CLAIM`` line.
    Returns: :class:`ClaimResult`.
    """
    if not isinstance(sentence, str) or not sentence.strip() or "|" in sentence or "\n" in sentence:
        raise ValueError(f"sentence: expected one line of text without '|', got {sentence!r}")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction: expected one of {DIRECTIONS}, got {direction!r}")
    if isinstance(margin, bool) or not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin: expected a finite number >= 0, got {margin!r}")
    if not isinstance(controls, Mapping) or len(controls) == 0:
        raise ValueError("controls: expected a mapping name -> per-unit values with at least one control; "
                         "a claim without a control cannot fail")
    sampler = Resampler(n_boot, seed)
    x = as_draws("tested", tested)
    units = sampler.units(x.n_units)
    x_reps = replicates(x, statistic, sampler.draws(x), units)
    x_value = point_value(x, statistic)
    results = []
    for name, values in controls.items():
        y = as_draws(f"controls[{name!r}]", values)
        is_paired = paired.get(name, True) if isinstance(paired, Mapping) else bool(paired)
        if is_paired and y.n_units != x.n_units:
            raise ValueError(f"controls[{name!r}]: a paired control needs one value per tested unit ({x.n_units}), "
                             f"got {y.n_units}; pass paired={{{name!r}: False}} for an independent sample")
        y_reps = replicates(y, statistic, sampler.draws(y), units if is_paired else sampler.units(y.n_units))
        y_value = point_value(y, statistic)
        results.append(ControlResult(str(name), y_value, percentile_ci(y_reps), x_value - y_value,
                                     percentile_ci(x_reps - y_reps), is_paired, y.n_draws))
    result = ClaimResult(sentence.strip(), x_value, percentile_ci(x_reps), tuple(results), direction,
                         float(margin), x.n_units, x.n_draws)
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


def checks(skip_reason: str | None = None) -> tuple[Callable[..., ClaimResult | str], Callable[..., IdentityResult | str]]:
    """``(claim, identity)`` for a notebook section. With ``skip_reason`` (one line) both print and return the
    sentence's ``SKIPPED`` line with that reason instead of evaluating anything: for a section whose data
    cannot decide its checks (e.g. a real dataset without the masks it needs). ``None``: the real ones."""
    if skip_reason is None:
        return claim, identity
    skipped("probe", skip_reason, show=False)          # the reason's format is checked once, here

    def skip(sentence: str, *args: object, show: bool = True, **kwargs: object) -> str:
        return skipped(sentence, skip_reason, show=show)
    return skip, skip


_NUMBER = r"(-?[\d.]+(?:e[-+]?\d+)?|nan|inf|-inf)"
_CLAIM = re.compile(rf"^CLAIM (?P<sentence>.+?) \| (?P<value>{_NUMBER}) \[{_NUMBER}, {_NUMBER}\] vs "
                    rf"(?P<control>.+) (?P<control_value>{_NUMBER}) \[{_NUMBER}, {_NUMBER}\] \| verdict: "
                    rf"(?P<verdict>holds|refuted|inconclusive)$")
_IDENTITY = re.compile(rf"^IDENTITY (?P<sentence>.+?) \| gap (?P<value>{_NUMBER}) \| broken by (?P<control>.+): gap "
                       rf"(?P<control_value>{_NUMBER}) \| holds: (?P<holds>True|False)$")
_SKIPPED = re.compile(r"^SKIPPED (?P<sentence>.+?) \| (?P<reason>.+)$")


def parse_line(line: str) -> dict[str, str] | None:
    """``{"kind", "sentence", "value", "control", "control_value", "verdict"}`` for a CLAIM line (``holds``,
    ``refuted`` or ``inconclusive``), ``{"kind", "sentence", "value", "control", "control_value", "holds"}``
    (``True``/``False``) for an IDENTITY line, ``{"kind": "SKIPPED", "sentence", "reason"}`` for a skip,
    ``None`` for anything else."""
    line = line.rstrip()
    for kind, pattern in (("CLAIM", _CLAIM), ("IDENTITY", _IDENTITY), ("SKIPPED", _SKIPPED)):
        match = pattern.match(line)
        if match:
            return {"kind": kind, **{k: v for k, v in match.groupdict().items() if v is not None}}
    return None


def checked_results(notebook: str | Path) -> list[dict[str, str]]:
    """The parsed ``CLAIM`` / ``IDENTITY`` / ``SKIPPED`` lines (:func:`parse_line`) that an executed notebook's
    checked cells (``# NBVAL_CHECK_OUTPUT``) printed to their stream outputs, in order."""
    import nbformat
    out = []
    for cell in nbformat.read(str(notebook), as_version=4).cells:
        if cell.cell_type != "code" or "NBVAL_CHECK_OUTPUT" not in cell.source:
            continue
        for output in cell.get("outputs", []):
            for line in output.get("text", "").splitlines() if output.get("output_type") == "stream" else []:
                parsed = parse_line(line)
                if parsed is not None:
                    out.append(parsed)
    return out
