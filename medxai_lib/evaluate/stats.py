"""Uncertainty for every comparison in the suite: the one place that resamples.

* :func:`bootstrap` - a percentile bootstrap CI of a statistic over units (images, studies, lesions).
* :func:`difference` - the CI of ``statistic(a) - statistic(b)``, paired (same units, resampled jointly)
  or unpaired (each resampled on its own).
* **Draws x units.** Where a value is itself random (a model seed, a generator seed, a random unit
  group, a refit on permuted labels), pass :class:`Draws` ``(S, N)`` or ``(S, N, d)``: S draws of the
  same N units. The bootstrap is then two-stage: the outer stage resamples the S draws with
  replacement, the inner stage resamples the N units (one unit resample per replicate, shared by the
  draws, so that what was measured on the same units stays paired: Owen's two-way "pigeonhole"
  bootstrap). The statistic is computed per draw and averaged over the draws. With one draw this is
  the ordinary bootstrap; when draws differ the CI widens by their spread.
* Two :class:`Draws` with the same ``over`` and the same S are paired on draws too (draw s of both
  comes from one seed); otherwise their draws are resampled independently.
* :func:`wilson_ci` - Wilson's score interval for a proportion, where a bootstrap degenerates (all hits or
  all misses).
* :func:`fmt` / :func:`format_ci` - the one way a value and its CI are written (``0.123 [0.100, 0.150]``).

Everything is vectorised over bootstrap replicates: ``statistic`` maps ``(B, N[, d]) -> (B,)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

Statistic = Callable[[np.ndarray], np.ndarray]
LEVEL = 0.95
_CHUNK_ELEMENTS = 4_000_000          # resampled values held at once (memory stays ~32 MB per array)


def mean_statistic(samples: np.ndarray) -> np.ndarray:
    """Mean over units: ``(B, N)`` or ``(B, N, d)`` -> ``(B,)`` (``(B, d)`` means are averaged too)."""
    return samples.reshape(samples.shape[0], -1).mean(1) if samples.ndim > 2 else samples.mean(1)


def fmt(value: float) -> str:
    """Three decimals for ordinary magnitudes, scientific notation for tiny or huge ones."""
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.3f}" if value == 0 or 1e-3 <= abs(value) < 1e4 else f"{value:.2e}"


def format_ci(value: float, lo: float, hi: float) -> str:
    """``"value [lo, hi]"`` with :func:`fmt`'s digits: how every table and line shows an estimate."""
    return f"{fmt(value)} [{fmt(lo)}, {fmt(hi)}]"


@dataclass(frozen=True)
class Estimate:
    """A statistic with its percentile CI; ``str()`` is :func:`format_ci`."""
    value: float
    lo: float
    hi: float

    @property
    def ci(self) -> tuple[float, float]:
        return self.lo, self.hi

    def __str__(self) -> str:
        return format_ci(self.value, self.lo, self.hi)


class Draws:
    """Per-unit values of S random draws: ``(S, N)`` or ``(S, N, d)``.

    ``over`` names what was drawn ("model seed", "random unit group", ...); two ``Draws`` with the same
    ``over`` and S are paired on draws by :func:`difference` and :func:`medxai_lib.evaluate.claims.claim`.
    """

    def __init__(self, values: object, over: str = "draw") -> None:
        if not isinstance(over, str) or not over.strip():
            raise ValueError(f"over: expected a name for what was drawn (e.g. 'model seed'), got {over!r}")
        if isinstance(values, (list, tuple)) and values and all(np.ndim(v) >= 1 for v in values):
            lengths = {np.shape(v) for v in values}
            if len(lengths) != 1:
                raise ValueError(f"values: draws must have the same units; got shapes {sorted(lengths)} (ragged)")
        array = np.asarray(values, dtype=float)
        if array.ndim not in (2, 3) or array.shape[0] == 0 or array.shape[1] == 0:
            raise ValueError(f"values: expected a non-empty (S, N) or (S, N, d) array of draws x units, "
                             f"got shape {array.shape}")
        _check_finite("values", array)
        self.values = array
        self.over = over.strip()

    @property
    def n_draws(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_units(self) -> int:
        return int(self.values.shape[1])

    def __repr__(self) -> str:
        return f"Draws({self.n_draws} x {self.n_units} units, over={self.over!r})"


def _check_finite(name: str, array: np.ndarray) -> None:
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: contains NaN or inf ({int((~np.isfinite(array)).sum())} of {array.size} values)")


def as_draws(name: str, values: object) -> Draws:
    """``values`` as :class:`Draws`: a ``Draws`` is returned as is; a plain ``(N,)`` or ``(N, d)`` array of
    per-unit values is one fixed draw (``over=""``, never paired on draws)."""
    if isinstance(values, Draws):
        return values
    array = np.asarray(values, dtype=float)
    if array.ndim not in (1, 2) or array.shape[0] == 0:
        raise ValueError(f"{name}: expected a non-empty (N,) or (N, d) array of per-unit values (or stats.Draws "
                         f"for draws x units), got shape {array.shape}")
    _check_finite(name, array)
    fixed = Draws.__new__(Draws)
    fixed.values, fixed.over = array[None], ""
    return fixed


def percentile_ci(replicates: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The ``level`` percentile interval of bootstrap replicates ``(B,)``."""
    lo, hi = np.quantile(np.asarray(replicates, dtype=float), [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def point_value(draws: Draws, statistic: Statistic = mean_statistic) -> float:
    """The statistic per draw on all units, averaged over draws."""
    out = np.asarray(statistic(draws.values), dtype=float)
    if out.shape != (draws.n_draws,):
        raise ValueError(f"statistic: expected (B, N[, d]) -> (B,), got output shape {out.shape}")
    return float(out.mean())


def replicates(draws: Draws, statistic: Statistic, draw_idx: np.ndarray, unit_idx: np.ndarray) -> np.ndarray:
    """Bootstrap replicates ``(B,)``: replicate b takes draws ``draw_idx[b]`` ``(S,)`` and units
    ``unit_idx[b]`` ``(N,)``, computes the statistic per draw and averages over draws."""
    n_boot, n_draws = draw_idx.shape
    values, out = draws.values, np.empty(n_boot)
    per_replicate = max(1, n_draws * values[0].size)
    step = max(1, _CHUNK_ELEMENTS // per_replicate)
    for start in range(0, n_boot, step):
        d, u = draw_idx[start:start + step], unit_idx[start:start + step]
        sample = values[d[:, :, None], u[:, None, :]]                     # (b, S, N[, d])
        flat = sample.reshape(-1, *sample.shape[2:])
        stat = np.asarray(statistic(flat), dtype=float)
        if stat.shape != (flat.shape[0],):
            raise ValueError(f"statistic: expected (B, N[, d]) -> (B,), got output shape {stat.shape}")
        out[start:start + len(d)] = stat.reshape(len(d), n_draws).mean(1)
    return out


class Resampler:
    """Bootstrap indices shared by everything compared in one claim: one unit resample per replicate for
    each unit set (paired arrays share it) and one draw resample per draw key (paired draws share it)."""

    def __init__(self, n_boot: int = 2000, seed: int = 0) -> None:
        if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 100:
            raise ValueError(f"n_boot: expected an integer >= 100, got {n_boot!r}")
        self.n_boot = n_boot
        self.rng = np.random.default_rng(seed)
        self._draws: dict[tuple[str, int], np.ndarray] = {}

    def units(self, n_units: int) -> np.ndarray:
        """A fresh unit resample ``(B, N)``."""
        return self.rng.integers(0, n_units, size=(self.n_boot, n_units))

    def draws(self, draws: Draws) -> np.ndarray:
        """A draw resample ``(B, S)``: zeros for a fixed value; shared by all draws of one ``over`` and S."""
        if draws.n_draws == 1 and not draws.over:
            return np.zeros((self.n_boot, 1), dtype=int)
        key = (draws.over, draws.n_draws)
        if key not in self._draws:
            self._draws[key] = self.rng.integers(0, draws.n_draws, size=(self.n_boot, draws.n_draws))
        return self._draws[key]


def bootstrap(values: object, statistic: Statistic = mean_statistic, n_boot: int = 2000, seed: int = 0,
              level: float = LEVEL) -> Estimate:
    """The statistic and its percentile CI; ``values`` per unit ``(N,)``/``(N, d)`` or :class:`Draws`."""
    draws = as_draws("values", values)
    sampler = Resampler(n_boot, seed)
    reps = replicates(draws, statistic, sampler.draws(draws), sampler.units(draws.n_units))
    return Estimate(point_value(draws, statistic), *percentile_ci(reps, level))


def bootstrap_many(values: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = LEVEL
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means and CIs of many columns at once: ``values (N, M)`` (units x quantities, units resampled
    jointly) -> ``(mean (M,), lo (M,), hi (M,))``."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"values: expected a non-empty (N, M) array, got shape {array.shape}")
    _check_finite("values", array)
    idx = Resampler(n_boot, seed).units(array.shape[0])
    chunks = np.array_split(idx, max(1, idx.size * array.shape[1] // _CHUNK_ELEMENTS + 1))
    reps = np.concatenate([array[chunk].mean(1) for chunk in chunks])          # (B, M)
    lo, hi = np.quantile(reps, [(1 - level) / 2, 1 - (1 - level) / 2], axis=0)
    return array.mean(0), lo, hi


def wilson_ci(successes: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson's score interval for a proportion ``successes / n``: where a percentile bootstrap degenerates
    (all hits or all misses resample to the same value) it still says how far ``n`` units pin the rate down."""
    from scipy.stats import norm
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: expected a positive int, got {n!r}")
    if isinstance(successes, bool) or not isinstance(successes, (int, np.integer)) or not 0 <= successes <= n:
        raise ValueError(f"successes: expected an int in [0, n={n}], got {successes!r}")
    z = float(norm.ppf(1 - (1 - level) / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (0.0 if successes == 0 else max(0.0, centre - half)), (1.0 if successes == n else min(1.0, centre + half))


def difference(a: object, b: object, statistic: Statistic = mean_statistic, paired: bool = True,
               n_boot: int = 2000, seed: int = 0, level: float = LEVEL) -> Estimate:
    """``statistic(a) - statistic(b)`` with its CI. ``paired``: same units in the same order (resampled
    jointly); two :class:`Draws` with the same ``over`` and S are also paired on draws."""
    da, db = as_draws("a", a), as_draws("b", b)
    sampler = Resampler(n_boot, seed)
    units_a = sampler.units(da.n_units)
    if paired and db.n_units != da.n_units:
        raise ValueError(f"b: a paired comparison needs the same units ({da.n_units}), got {db.n_units}; "
                         "pass paired=False for independent samples")
    units_b = units_a if paired else sampler.units(db.n_units)
    reps = (replicates(da, statistic, sampler.draws(da), units_a)
            - replicates(db, statistic, sampler.draws(db), units_b))
    return Estimate(point_value(da, statistic) - point_value(db, statistic), *percentile_ci(reps, level))
