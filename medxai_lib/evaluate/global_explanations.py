"""Global explanations: embedding separation, distilled surrogate trees and their fidelity."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import silhouette_score
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier


def embedding_separation(embedding: np.ndarray, labels: np.ndarray) -> float:
    """Silhouette score of ``labels`` in an ``(N, d)`` embedding: 1 = separated clusters, 0 = mixed."""
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        raise ValueError("labels: need at least two groups to measure separation")
    return float(silhouette_score(np.asarray(embedding), labels))


def distill_tree(features: np.ndarray, teacher_predictions: np.ndarray, max_depth: int = 3, test_size: float = 0.3,
                 seed: int = 0, feature_names: Sequence[str] | None = None
                 ) -> tuple[DecisionTreeClassifier, float]:
    """Fit a depth-limited tree to mimic a model's predicted classes from interpretable ``features``
    ``(N, F)``; returns ``(tree, fidelity)`` where fidelity = agreement with the model on held-out rows."""
    X_train, X_test, y_train, y_test = train_test_split(np.asarray(features), np.asarray(teacher_predictions),
                                                        test_size=test_size, random_state=seed,
                                                        stratify=np.asarray(teacher_predictions))
    tree = DecisionTreeClassifier(max_depth=max_depth, random_state=seed).fit(X_train, y_train)
    if feature_names is not None:
        tree.feature_names_ = list(feature_names)
    return tree, float((tree.predict(X_test) == y_test).mean())


def cue_permutation_importance(model: "torch.nn.Module", dataset: "torch.utils.data.Dataset", cues: Sequence[str],
                               n_repeats: int = 2, seed: int = 0, device: str = "auto", batch_size: int = 64
                               ) -> "pandas.DataFrame":
    """Permutation importance of the phantom's generative cues for a trained image model.

    The image model composed with the renderer, ``f(cues) = model(render(cues))``, is a model of the
    cues; shuffling one cue across the images and *re-rendering* them (everything else unchanged) is
    permutation importance for it (Breiman 2001). Returns one row per cue: the drop in accuracy against
    the labels and the mean absolute change of the predicted probability, averaged over ``n_repeats``."""
    import pandas as pd
    from medxai_lib.models.inference import predict_logits, probabilities
    if not hasattr(dataset, "permuted"):
        raise TypeError("dataset: needs permuted(field, seed) (a phantom); real images cannot be re-rendered")
    labels = np.asarray(dataset.labels)

    def predict(ds: "torch.utils.data.Dataset") -> np.ndarray:
        return probabilities(predict_logits(model, ds, batch_size, device))

    base = predict(dataset)
    base_acc = float((base.argmax(1) == labels).mean())
    rows = {}
    for cue in cues:
        drops, changes = [], []
        for r in range(n_repeats):
            shuffled = predict(dataset.permuted(cue, seed=seed + r))
            drops.append(base_acc - float((shuffled.argmax(1) == labels).mean()))
            changes.append(float(np.abs(shuffled - base).sum(1).mean() / 2))
        rows[cue] = {"accuracy drop": float(np.mean(drops)), "mean |change of P|": float(np.mean(changes))}
    return pd.DataFrame(rows).T.sort_values("accuracy drop", ascending=False)
