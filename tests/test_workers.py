"""train.workers: recipe calls train in spawned one-thread processes, and a recipe trained there gives the
same weights as when it trains in this process."""
import os

import pytest
import torch

from medxai_lib.train.fit import weights_digest
from medxai_lib.train.recipes import shortcut_classifiers
from medxai_lib.train.workers import one_thread, warm_cache
from helpers import record_process


def test_warm_cache_runs_nothing_with_one_worker_or_one_call(tmp_path):
    assert warm_cache([(record_process, {"path": str(tmp_path / "a.txt")})], workers=2) == 0
    assert warm_cache([(record_process, {"path": str(tmp_path / "b.txt")})] * 2, workers=1) == 0
    assert not list(tmp_path.iterdir())


def test_warm_cache_rejects_bad_input():
    with pytest.raises(ValueError, match="workers"):
        warm_cache([], workers=0)
    with pytest.raises(ValueError, match="workers"):
        warm_cache([], workers=True)
    with pytest.raises(ValueError, match=r"calls\[0\]"):
        warm_cache([(record_process, "path")], workers=2)


def test_one_thread_restores_the_thread_count_also_after_an_error():
    before = torch.get_num_threads()
    with pytest.raises(KeyError):
        with one_thread():
            assert torch.get_num_threads() == 1
            raise KeyError("boom")
    assert torch.get_num_threads() == before


def test_workers_run_each_call_with_one_thread_and_train_the_same_weights_as_here(tmp_path, monkeypatch):
    """One pool (spawning workers costs seconds): two probe calls and two recipe calls."""
    from medxai_lib.train.recipes import shortcut_classifier
    args = dict(image_size=32, n_train_studies=6, epochs=1, batch_size=4, device="cpu")
    monkeypatch.setenv("MEDXAI_CACHE", str(tmp_path / "parallel"))
    probes = [(record_process, {"path": str(tmp_path / f"{k}.txt")}) for k in range(2)]
    recipes = [(shortcut_classifier, dict(seed=seed, marker_correlation=1.0, **args)) for seed in (0, 1)]
    assert warm_cache(probes + recipes, workers=2) == 4
    seen = [(tmp_path / f"{k}.txt").read_text().split() for k in range(2)]
    assert all(threads == "1" for _, threads in seen) and all(int(pid) != os.getpid() for pid, _ in seen)
    parallel = shortcut_classifiers([0, 1], (1.0,), workers=2, **args)     # nothing left to train: all cached
    assert all(m.fit.from_cache for m in parallel.values()), "the workers should have cached every model"
    monkeypatch.setenv("MEDXAI_CACHE", str(tmp_path / "here"))
    here = shortcut_classifiers([0, 1], (1.0,), workers=1, **args)
    assert not any(m.fit.from_cache for m in here.values())
    for key in parallel:
        assert weights_digest(parallel[key].model) == weights_digest(here[key].model), key
