"""Global explanations: embedding separation, distilled surrogate trees, permutation importance with
per-unit values (so that it gets bootstrap CIs and a permuted-label control), counterfactual effects."""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
from sklearn.metrics import silhouette_score

from medxai_lib.evaluate.stats import bootstrap_many


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
                            n_repeats: int = 3, seed: int = 0, device: str = "auto", batch_size: int = 64
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
                        seed: int = 0) -> np.ndarray:
    """The permuted-label control for :func:`permutation_importance_per_unit`, as a distribution rather than
    one draw: ``n_refits`` clones of ``model`` (an unfitted or fitted sklearn classifier) are each fitted on
    a different permutation of ``y_train``, their per-row importances on ``(X_test, y_test)`` are computed,
    and the mean over refits is returned, ``(N_test, F)``. One refit is a single draw from the null, whose
    importances can be large by chance for any feature; the mean estimates what a model that learned
    nothing real gets, feature by feature."""
    from sklearn.base import clone
    if not isinstance(n_refits, int) or n_refits < 1:
        raise ValueError(f"n_refits: expected a positive int, got {n_refits!r}")
    y_train = np.asarray(y_train)
    rng = np.random.default_rng(seed)
    total = None
    for k in range(n_refits):
        null_model = clone(model).fit(X_train, rng.permutation(y_train))
        values = permutation_importance_per_unit(null_model.predict_proba, X_test, y_test, n_repeats, seed=seed + k)
        total = values if total is None else total + values
    return total / n_refits


def importance_summary(values: np.ndarray, null: np.ndarray, names: Sequence[str], n_boot: int = 2000,
                       seed: int = 0) -> "pandas.DataFrame":
    """Mean importance per feature with a bootstrap 95% CI over units, beside a control (``null``: the same
    measure for a permuted-label model or permuted labels, same units), and a rank that is only given where
    the importance's CI and the CI of (importance - null) both lie above 0; elsewhere the rank is empty (no
    ranking inside the noise). The CIs come from :func:`~medxai_lib.evaluate.stats.bootstrap_many`, with one
    resample of the units shared by the importance, the null and their difference.
    ``values``, ``null``: ``(N, F)``. Rows sorted by importance."""
    import pandas as pd
    values, null = np.asarray(values, dtype=float), np.asarray(null, dtype=float)
    if values.ndim != 2 or values.shape != null.shape or values.shape[1] != len(names):
        raise ValueError(f"values, null, names: expected two (N, F) arrays and F names, got {values.shape}, "
                         f"{null.shape}, {len(names)}")
    columns = np.concatenate([values, null, values - null], 1)            # (N, 3F), units resampled jointly
    _, lows, highs = bootstrap_many(columns, n_boot, seed)
    (lo, n_lo, d_lo), (hi, n_hi, _) = np.split(lows, 3), np.split(highs, 3)
    beyond = (d_lo > 0) & (lo > 0)
    table = pd.DataFrame({"importance": values.mean(0), "CI low": lo, "CI high": hi, "null": null.mean(0),
                          "null CI low": n_lo, "null CI high": n_hi, "beats null": beyond}, index=list(names))
    table = table.sort_values("importance", ascending=False)
    ranked = table["beats null"].to_numpy()
    table["rank"] = [str(int(r)) if ok else "" for r, ok in zip(np.cumsum(ranked), ranked)]
    return table


def counterfactual_change(model: "torch.nn.Module", dataset: "torch.utils.data.Dataset",
                          changes: Mapping[str, Mapping[str, object]], target: int = 1, device: str = "auto",
                          batch_size: int = 64) -> dict[str, np.ndarray]:
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
