import json

import numpy as np
import pytest
import torch

from medxai_lib import runtime


def test_seed_everything_makes_python_numpy_torch_repeat():
    import random
    runtime.seed_everything(123)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    runtime.seed_everything(123)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first
    assert torch.are_deterministic_algorithms_enabled()


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_seed_everything_rejects_bad_seed(bad):
    with pytest.raises(ValueError, match="seed"):
        runtime.seed_everything(bad)


def test_resolve_device():
    assert runtime.resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert runtime.resolve_device("auto").type == expected
    with pytest.raises(ValueError, match="device"):
        runtime.resolve_device("tpu")
    with pytest.raises(TypeError, match="device"):
        runtime.resolve_device(3)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            runtime.resolve_device("cuda")


def test_config_hash_ignores_key_order_but_not_values():
    a = runtime.config_hash({"lr": 1e-3, "epochs": 3, "data": {"size": 96, "seed": 0}})
    b = runtime.config_hash({"data": {"seed": 0, "size": 96}, "epochs": 3, "lr": 1e-3})
    c = runtime.config_hash({"lr": 1e-3, "epochs": 4, "data": {"size": 96, "seed": 0}})
    assert a == b and a != c and len(a) == 16
    with pytest.raises(TypeError, match="config"):
        runtime.config_hash({"bad": object()})


def test_cache_dir_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDXAI_CACHE", str(tmp_path / "elsewhere"))
    assert runtime.cache_dir() == tmp_path / "elsewhere" and (tmp_path / "elsewhere").is_dir()


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.txt"
    runtime.atomic_write(target, lambda p: p.write_text("complete"))
    assert target.read_text() == "complete"

    def broken(p):
        p.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        runtime.atomic_write(target, broken)
    assert target.read_text() == "complete"
    assert list(tmp_path.iterdir()) == [target]


def test_record_writes_json_lines_the_runner_reads(tmp_path, monkeypatch):
    path = tmp_path / "m.jsonl"
    monkeypatch.setenv("MEDXAI_RECORD_FILE", str(path))
    assert runtime.record("auroc", np.float32(0.5)) == 0.5
    runtime.record("n_images", 12)
    runtime.record("auroc", torch.tensor(0.75))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0] == {"name": "auroc", "value": 0.5} and len(lines) == 3
    assert runtime.read_records(path) == {"auroc": 0.75, "n_images": 12}
    assert runtime.recorded()["auroc"] == 0.75


def test_record_rejects_bad_input():
    with pytest.raises(ValueError, match="name"):
        runtime.record("", 1.0)
    with pytest.raises(ValueError, match="not finite"):
        runtime.record("x", float("nan"))
    with pytest.raises(ValueError, match="scalar"):
        runtime.record("x", torch.ones(2))
    with pytest.raises(TypeError, match="value"):
        runtime.record("x", [1, 2])


def test_progress_switch():
    items = [1, 2, 3]
    runtime.set_progress(False)
    try:
        assert runtime.progress(items) is items
    finally:
        runtime.set_progress(True)
    bar = runtime.progress(items, disable=True)
    assert list(bar) == items and bar is not items
