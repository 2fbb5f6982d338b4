"""Notebook 01's global explanations. Global surrogates: simpler models fitted to a black box's decisions, compared against it.

A surrogate's *fidelity* is its agreement with the black box on inputs it was not fitted on. Fidelity alone
says little when the black box is accurate: a model of the same kind fitted to the *true labels* agrees with
the black box about as often, without having learned anything about it. The two can only differ where the
black box is wrong, so :func:`compare_surrogates` returns, per unit and out of fold, whether the distilled
surrogate and the label-trained twin agree with the black box; the errors are where to compare them.

Global explanations: embedding separation, distilled surrogate trees, permutation importance with
per-unit values (so that it gets bootstrap CIs and a permuted-label control), counterfactual effects.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from sklearn.base import clone
from sklearn.metrics import silhouette_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from medxai_lib.models.inference import INFERENCE_BATCH
from medxai_lib.evaluate.stats import (Draws, Resampler, bootstrap_many, mean_statistic, percentile_ci,
                                       replicates)

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


def embedding_separation(embedding: np.ndarray, labels: np.ndarray) -> float:
    """Silhouette score of ``labels`` in an ``(N, d)`` embedding: 1 = separated clusters, 0 = mixed."""
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        raise ValueError("labels: need at least two groups to measure separation")
    return float(silhouette_score(np.asarray(embedding), labels))


def separation_per_unit(embedding: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Silhouette of each unit in an ``(N, d)`` embedding, ``(N,)`` in [-1, 1]: ``(b - a) / max(a, b)`` with
    ``a`` the mean distance to its own group and ``b`` to the other group; the mean is
    :func:`embedding_separation`."""
    from sklearn.metrics import silhouette_samples
    embedding, labels = np.asarray(embedding, dtype=float), np.asarray(labels)
    if embedding.ndim != 2 or len(embedding) != len(labels):
        raise ValueError(f"embedding, labels: expected (N, d) and (N,), got {embedding.shape} and {labels.shape}")
    if len(np.unique(labels)) < 2:
        raise ValueError("labels: need at least two groups to measure separation")
    return silhouette_samples(embedding, labels)


def _probabilities_of(model: "torch.nn.Module", dataset: "torch.utils.data.Dataset", batch_size: int,
                      device: str) -> np.ndarray:
    from medxai_lib.models.inference import predict_logits, probabilities
    probs = probabilities(predict_logits(model, dataset, batch_size, device))
    return probs if probs.ndim == 2 else np.stack([1 - probs, probs], 1)


def cue_importance_per_unit(model: "torch.nn.Module", dataset: "torch.utils.data.Dataset", cues: Sequence[str],
                            n_repeats: int = 3, seed: int = 0, device: str = "auto", batch_size: int = INFERENCE_BATCH
                            ) -> dict[str, np.ndarray]:
    """Permutation importance of a phantom's generative cues for an image model, per image.

    The image model composed with the renderer, ``f(cues) = model(render(cues))``, is a model of the cues;
    shuffling one cue across the images and *re-rendering* them (everything else unchanged) is permutation
    importance for it (Breiman 2001). Returns ``(N, C)`` arrays, averaged over ``n_repeats`` shuffles:
    ``"accuracy drop"`` (1 if the image was right and is now wrong, -1 the other way round),
    ``"null drop"`` (the same against a fixed random permutation of the labels: the permuted-label
    control, 0 in expectation) and ``"|change of P|"`` (total-variation change of the predicted
    distribution, ``0.5 * sum_k |dP_k|``; for two classes ``|dP(class 1)|``)."""
    if not hasattr(dataset, "permuted"):
        raise TypeError("dataset: needs permuted(field, seed) (a phantom); real images cannot be re-rendered")
    if not isinstance(n_repeats, int) or n_repeats < 1:
        raise ValueError(f"n_repeats: expected a positive int, got {n_repeats!r}")
    if len(cues) == 0:
        raise ValueError("cues: expected at least one cue")
    labels = np.asarray(dataset.labels)
    null_labels = np.random.default_rng([seed, 7]).permutation(labels)
    base = _probabilities_of(model, dataset, batch_size, device)
    out = {k: np.zeros((len(labels), len(cues))) for k in ("accuracy drop", "null drop", "|change of P|")}
    for c, cue in enumerate(cues):
        for r in range(n_repeats):
            shuffled = _probabilities_of(model, dataset.permuted(cue, seed=seed + r), batch_size, device)
            before, after = base.argmax(1), shuffled.argmax(1)
            out["accuracy drop"][:, c] += ((before == labels).astype(float) - (after == labels)) / n_repeats
            out["null drop"][:, c] += ((before == null_labels).astype(float) - (after == null_labels)) / n_repeats
            out["|change of P|"][:, c] += np.abs(shuffled - base).sum(1) / 2 / n_repeats
    return out


def permutation_importance_per_unit(predict_proba: Callable[[np.ndarray], np.ndarray], X: np.ndarray,
                                    y: np.ndarray, n_repeats: int = 10, seed: int = 0) -> np.ndarray:
    """Permutation importance of each column of a table for any ``predict_proba``, per row: the increase of
    the row's log-loss (``-log p(true class)``) when the column is shuffled, averaged over ``n_repeats``.
    ``X (N, F)``, ``y (N,)`` int classes -> ``(N, F)``; the column means are the usual importances."""
    X, y = np.asarray(X, dtype=float), np.asarray(y)
    if X.ndim != 2 or y.shape != (len(X),) or len(X) < 2:
        raise ValueError(f"X, y: expected (N, F) with N >= 2 and (N,), got {X.shape} and {y.shape}")
    if not isinstance(n_repeats, int) or n_repeats < 1:
        raise ValueError(f"n_repeats: expected a positive int, got {n_repeats!r}")
    rows = np.arange(len(y))

    def loss(data: np.ndarray) -> np.ndarray:
        return -np.log(np.clip(np.asarray(predict_proba(data))[rows, y], 1e-12, 1.0))

    base, rng = loss(X), np.random.default_rng(seed)
    out = np.zeros(X.shape)
    for f in range(X.shape[1]):
        for _ in range(n_repeats):
            shuffled = X.copy()
            shuffled[:, f] = X[rng.permutation(len(X)), f]
            out[:, f] += (loss(shuffled) - base) / n_repeats
    return out


def permuted_label_null(model: "sklearn.base.ClassifierMixin", X_train: np.ndarray, y_train: np.ndarray,
                        X_test: np.ndarray, y_test: np.ndarray, n_refits: int = 20, n_repeats: int = 10,
                        seed: int = 0, keep_draws: bool = False) -> np.ndarray:
    """The permuted-label control for :func:`permutation_importance_per_unit`, as a distribution rather than
    one draw: ``n_refits`` clones of ``model`` (an unfitted or fitted sklearn classifier) are each fitted on
    a different permutation of ``y_train``, their per-row importances on ``(X_test, y_test)`` are computed,
    and the mean over refits is returned, ``(N_test, F)`` — or, with ``keep_draws=True``, every refit's,
    ``(n_refits, N_test, F)``, to pass as :class:`~medxai_lib.evaluate.stats.Draws` so that the spread of the
    refits enters the CIs. One refit is a single draw from the null, whose importances can be large by chance
    for any feature; the mean estimates what a model that learned nothing real gets, feature by feature."""
    from sklearn.base import clone
    if not isinstance(n_refits, int) or n_refits < 1:
        raise ValueError(f"n_refits: expected a positive int, got {n_refits!r}")
    y_train = np.asarray(y_train)
    rng = np.random.default_rng(seed)
    refits = []
    for k in range(n_refits):
        null_model = clone(model).fit(X_train, rng.permutation(y_train))
        refits.append(permutation_importance_per_unit(null_model.predict_proba, X_test, y_test, n_repeats, seed=seed + k))
    return np.stack(refits) if keep_draws else np.mean(refits, axis=0)


def importance_summary(values: np.ndarray, null: np.ndarray, names: Sequence[str], n_boot: int = 2000,
                       seed: int = 0) -> "pandas.DataFrame":
    """Mean importance per feature with a bootstrap 95% CI over units, beside a control (``null``: the same
    measure for a permuted-label model or permuted labels, same units), and a rank that is only given where
    the importance's CI and the CI of (importance - null) both lie above 0; elsewhere the rank is empty (no
    ranking inside the noise). The CIs come from :func:`~medxai_lib.evaluate.stats.bootstrap_many`, with one
    resample of the units shared by the importance, the null and their difference.
    ``values``: ``(N, F)``; ``null``: ``(N, F)``, or :class:`~medxai_lib.evaluate.stats.Draws` ``(S, N, F)`` (e.g.
    every permuted-label refit): then the null's CI and the difference's resample refits x units (two-stage).
    Rows sorted by importance."""
    import pandas as pd
    values = np.asarray(values, dtype=float)
    draws = null if isinstance(null, Draws) else None
    null = draws.values.mean(0) if draws is not None else np.asarray(null, dtype=float)
    if values.ndim != 2 or values.shape != null.shape or values.shape[1] != len(names):
        raise ValueError(f"values, null, names: expected two (N, F) arrays (or Draws (S, N, F)) and F names, got "
                         f"{values.shape}, {null.shape}, {len(names)}")
    if draws is None:
        columns = np.concatenate([values, null, values - null], 1)        # (N, 3F), units resampled jointly
        _, lows, highs = bootstrap_many(columns, n_boot, seed)
        (lo, n_lo, d_lo), (hi, n_hi, _) = np.split(lows, 3), np.split(highs, 3)
    else:                                                                 # the null and the difference: refits x units
        _, lo, hi = bootstrap_many(values, n_boot, seed)
        resampler = Resampler(n_boot, seed)
        units, refits, fixed = resampler.units(len(values)), resampler.draws(draws), np.zeros((n_boot, 1), dtype=int)
        n_lo, n_hi, d_lo = (np.empty(values.shape[1]) for _ in range(3))
        for f in range(values.shape[1]):
            tested = replicates(Draws(values[None, :, f], over="tested"), mean_statistic, fixed, units)
            control = replicates(Draws(draws.values[:, :, f], over=draws.over), mean_statistic, refits, units)
            (n_lo[f], n_hi[f]), (d_lo[f], _) = percentile_ci(control), percentile_ci(tested - control)
    beyond = (d_lo > 0) & (lo > 0)
    table = pd.DataFrame({"importance": values.mean(0), "CI low": lo, "CI high": hi, "null": null.mean(0),
                          "null CI low": n_lo, "null CI high": n_hi, "beats null": beyond}, index=list(names))
    table = table.sort_values("importance", ascending=False)
    ranked = table["beats null"].to_numpy()
    table["rank"] = [str(int(r)) if ok else "" for r, ok in zip(np.cumsum(ranked), ranked)]
    return table


def counterfactual_change(model: "torch.nn.Module", dataset: "torch.utils.data.Dataset",
                          changes: Mapping[str, Mapping[str, object]], target: int = 1, device: str = "auto",
                          batch_size: int = INFERENCE_BATCH) -> dict[str, np.ndarray]:
    """Signed change of the ``target`` class probability per image when the phantom re-renders every image
    with ``changes[name]`` applied (``dataset.counterfactual(**changes[name])``, e.g. ``{"n_hairs": 0}``).
    Returns name -> ``(N,)`` ``P(counterfactual) - P(original)``; ``"original"`` -> ``(N,)`` P itself."""
    if not hasattr(dataset, "counterfactual"):
        raise TypeError("dataset: needs counterfactual(**changes) (a phantom); real images cannot be re-rendered")
    base = _probabilities_of(model, dataset, batch_size, device)
    if not 0 <= target < base.shape[1]:
        raise ValueError(f"target: expected a class index in [0, {base.shape[1]}), got {target!r}")
    out = {"original": base[:, target]}
    for name, change in changes.items():
        out[name] = _probabilities_of(model, dataset.counterfactual(**change), batch_size, device)[:, target] \
            - base[:, target]
    return out
