"""train.workers: recipe calls train in spawned one-thread processes, and a recipe trained there gives the
same weights as when it trains in this process."""
import os

import pytest
import torch

from medxai_lib.train.fit import weights_digest
from medxai_lib.train.recipes import shortcut_classifiers
from medxai_lib.train.workers import one_thread, warm_cache
from helpers import record_process


def test_warm_cache_runs_each_call_in_a_one_thread_worker(tmp_path):
    calls = [(record_process, {"path": str(tmp_path / f"{k}.txt")}) for k in range(3)]
    assert warm_cache(calls, workers=2) == 3
    seen = [(tmp_path / f"{k}.txt").read_text().split() for k in range(3)]
    assert all(threads == "1" for _, threads in seen)
    assert all(int(pid) != os.getpid() for pid, _ in seen)


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


def test_shortcut_models_trained_in_workers_equal_those_trained_here(tmp_path, monkeypatch):
    args = dict(image_size=32, n_train_studies=6, epochs=1, batch_size=4, device="cpu")
    monkeypatch.setenv("MEDXAI_CACHE", str(tmp_path / "parallel"))
    parallel = shortcut_classifiers([0, 1], (1.0,), workers=2, **args)
    assert all(m.fit.from_cache for m in parallel.values()), "the workers should have cached every model"
    monkeypatch.setenv("MEDXAI_CACHE", str(tmp_path / "here"))
    here = shortcut_classifiers([0, 1], (1.0,), workers=1, **args)
    assert not any(m.fit.from_cache for m in here.values())
    assert torch.get_num_threads() >= 1
    for key in parallel:
        assert weights_digest(parallel[key].model) == weights_digest(here[key].model), key
