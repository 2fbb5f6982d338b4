"""first_studies: a capped real-data run samples whole studies, stratified by body part and label."""
from collections import Counter

import numpy as np
import pytest

from medxai_lib.data import first_studies


class FakeStudies:
    """MURA-like index ordered by body part (as MURA's CSVs are): 3 parts x 2 labels x 20 studies of 1-4 views."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.study_ids, self.body_parts, labels = [], [], []
        for part in ("ELBOW", "HAND", "WRIST"):
            for label in (0, 1):
                for k in range(20):
                    for _ in range(int(rng.integers(1, 5))):
                        self.study_ids.append(f"{part}/p{k}/study_{label}")
                        self.body_parts.append(part)
                        labels.append(label)
        self.labels = np.array(labels)
        self.has_masks = False

    def __len__(self):
        return len(self.study_ids)

    def __getitem__(self, i):
        return {"label": self.labels[i]}


def _studies(subset):
    return Counter(subset.study_ids)


def test_keeps_whole_studies_and_every_stratum_in_proportion():
    data = FakeStudies()
    subset = first_studies(data, 60)
    assert 60 <= len(subset) < 60 + 4                      # the last study may overshoot by < 4 views
    full = Counter(data.study_ids)
    assert all(full[s] == n for s, n in _studies(subset).items())     # no study is cut
    strata = Counter((p, int(y)) for p, y in zip(subset.body_parts, subset.labels))
    assert len(strata) == 6                                # every body part, both labels
    share = np.array(list(strata.values())) / len(subset)
    assert share.min() > 0.10 and share.max() < 0.24       # proportional (1/6 each, +- a study)
    # the old behaviour (first studies in CSV order) would have kept ELBOW only
    assert set(subset.body_parts) == {"ELBOW", "HAND", "WRIST"}


def test_deterministic_per_seed_and_keeps_dataset_order():
    data = FakeStudies()
    a, b, c = first_studies(data, 40, seed=0), first_studies(data, 40, seed=0), first_studies(data, 40, seed=1)
    assert a.indices == b.indices and a.indices != c.indices
    assert list(a.indices) == sorted(a.indices)


def test_no_cap_and_bad_cap():
    data = FakeStudies()
    assert first_studies(data, None) is data and first_studies(data, len(data)) is data
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="max_images"):
            first_studies(data, bad)
