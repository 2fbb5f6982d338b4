"""Global surrogates: simpler models fitted to a black box's decisions, compared against it.

A surrogate's *fidelity* is its agreement with the black box on inputs it was not fitted on. Fidelity alone
says little when the black box is accurate: a model of the same kind fitted to the *true labels* agrees with
the black box about as often, without having learned anything about it. The two can only differ where the
black box is wrong, so :func:`compare_surrogates` returns, per unit and out of fold, whether the distilled
surrogate and the label-trained twin agree with the black box; the errors are where to compare them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold, cross_val_predict

#: The phantom's extra lesion colours (``LesionSpec.colours``) that :func:`lesion_cue_features` one-hot encodes.
EXTRA_COLOURS = ("dark_brown", "light_brown", "black", "veil", "regression")


def lesion_cue_features(dataset: Any) -> "pandas.DataFrame":
    """A dermatologist's vocabulary for each image of a skin-lesion phantom, ``(N, 14)`` DataFrame: the cue
    table's cues (irregularity, asymmetry, n_colours, n_dots, n_hairs, ruler, vignette), one 0/1 column per
    extra colour (``has_<colour>``), the lesion radius and whether the base colour is light brown."""
    import pandas as pd
    if not hasattr(dataset, "specs") or not hasattr(dataset, "cue_table"):
        raise TypeError("dataset: needs specs and cue_table() (a SkinLesionPhantom)")
    table = dataset.cue_table()[["irregularity", "asymmetry", "n_colours", "n_dots", "n_hairs", "ruler", "vignette"]]
    extra = pd.DataFrame([{f"has_{c}": float(c in s.colours) for c in EXTRA_COLOURS} |
                          {"radius": s.radius, "light_base": float(s.base_colour == "light_brown")}
                          for s in dataset.specs], index=table.index)
    return pd.concat([table, extra], axis=1)


@dataclass(frozen=True)
class SurrogateComparison:
    """One learner fitted to the black box's decisions (*distilled*) and to the true labels (*label twin*).

    ``distilled_agrees``, ``twin_agrees``: ``(N,)`` 0/1, out-of-fold agreement with the black box;
    ``errors``: ``(N,)`` bool, where the black box disagrees with the labels; ``model``: the distilled
    surrogate refitted on all rows (to read)."""

    name: str
    model: Any
    distilled_agrees: np.ndarray
    twin_agrees: np.ndarray
    errors: np.ndarray

    def fidelity(self, on_errors: bool = False) -> tuple[float, float]:
        """``(distilled, label twin)`` agreement with the black box, on all units or on its errors only."""
        keep = self.errors if on_errors else np.ones_like(self.errors)
        return float(self.distilled_agrees[keep].mean()), float(self.twin_agrees[keep].mean())


def _check_inputs(features: np.ndarray, black_box: np.ndarray, labels: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    features, black_box, labels = np.asarray(features, dtype=float), np.asarray(black_box), np.asarray(labels)
    if features.ndim != 2 or len(features) == 0:
        raise ValueError(f"features: expected a non-empty (N, F) array, got shape {features.shape}")
    if black_box.shape != (len(features),) or labels.shape != (len(features),):
        raise ValueError(f"black_box, labels: expected ({len(features)},) each, got {black_box.shape}, {labels.shape}")
    return features, black_box, labels


def _splits(features: np.ndarray, black_box: np.ndarray, labels: np.ndarray, n_splits: int, seed: int) -> list:
    """Folds stratified by (decision, label), so the black box's errors spread over them; where one kind of
    error has fewer than ``n_splits`` units, by error vs not."""
    errors = black_box != labels
    strata = 2 * black_box + labels
    if np.bincount(strata)[np.unique(strata)].min() < n_splits:
        strata = errors.astype(int) if np.bincount(errors.astype(int)).min() >= n_splits else labels
    return list(StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(features, strata))


def compare_surrogates(features: np.ndarray, black_box: np.ndarray, labels: np.ndarray,
                       learners: Mapping[str, Any], n_splits: int = 5, seed: int = 0
                       ) -> dict[str, SurrogateComparison]:
    """Fit each scikit-learn ``learner`` to the black box's predicted classes and, separately, to the true
    labels, with the same ``n_splits``-fold split; return out-of-fold agreement with the black box per unit.
    The folds are stratified by (decision, label), so the black box's errors spread over them; where one kind
    of error has fewer than ``n_splits`` units, by error vs not.

    Args:
        features: ``(N, F)`` interpretable features (e.g. :func:`lesion_cue_features`).
        black_box: ``(N,)`` the black box's predicted classes; labels: ``(N,)`` the true classes.
        learners: name -> unfitted estimator (cloned, never modified).
    Returns: name -> :class:`SurrogateComparison`.
    """
    features, black_box, labels = _check_inputs(features, black_box, labels)
    if not learners:
        raise ValueError("learners: expected at least one estimator")
    errors = black_box != labels
    splits = _splits(features, black_box, labels, n_splits, seed)
    out = {}
    for name, learner in learners.items():
        distilled = cross_val_predict(clone(learner), features, black_box, cv=splits)
        twin = cross_val_predict(clone(learner), features, labels, cv=splits)
        out[name] = SurrogateComparison(name, clone(learner).fit(features, black_box),
                                        (distilled == black_box).astype(float), (twin == black_box).astype(float),
                                        errors)
    return out


def label_flip_null(features: np.ndarray, black_box: np.ndarray, labels: np.ndarray, learner: Any,
                    n_draws: int = 20, n_splits: int = 5, seed: int = 0) -> np.ndarray:
    """The null for a surrogate judged on the black box's errors: the same learner fitted to the true labels
    with a random share of them flipped, that share being the black box's error rate (``n_draws`` random
    flips). It errs as often as the black box, but at random places; if the black box's errors were noise,
    a distilled surrogate could not reproduce them better than this. Uses the folds of
    :func:`compare_surrogates` (same ``n_splits``, ``seed``).

    Returns: ``(n_draws, E)`` 0/1 out-of-fold agreement with the black box on its E errors (wrap it in
    :class:`medxai_lib.evaluate.stats.Draws` for a claim)."""
    features, black_box, labels = _check_inputs(features, black_box, labels)
    if isinstance(n_draws, bool) or not isinstance(n_draws, int) or n_draws < 1:
        raise ValueError(f"n_draws: expected a positive int, got {n_draws!r}")
    errors = black_box != labels
    if not errors.any():
        raise ValueError("black_box: makes no errors on these units, so there is nothing to reproduce")
    classes = np.unique(labels)
    if len(classes) != 2:
        raise ValueError(f"labels: expected two classes for a label flip, got {len(classes)}")
    splits = _splits(features, black_box, labels, n_splits, seed)
    rng = np.random.default_rng([seed, 11])
    n_flip = int(errors.sum())
    out = np.empty((n_draws, n_flip))
    for d in range(n_draws):
        flipped = labels.copy()
        where = rng.choice(len(labels), n_flip, replace=False)
        flipped[where] = np.where(labels[where] == classes[0], classes[1], classes[0])
        fitted = cross_val_predict(clone(learner), features, flipped, cv=splits)
        out[d] = (fitted == black_box)[errors]
    return out
