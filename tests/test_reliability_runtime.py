"""Issue 17, item 11 outside data/explain/evaluate: the cache path, devices, the runner's --params, phantom
seeds, the registry's method argument and sparseness of a NaN map. Each case failed silently or with an
unrelated error before."""
import subprocess
import sys

import nbformat
import numpy as np
import pytest
import torch

from medxai_lib.data import FundusPhantom, RadiographPhantom
from medxai_lib.data.phantoms.histology import HistologyPhantom
from medxai_lib.data.phantoms.skin import SkinLesionPhantom
from medxai_lib.evaluate.metrics.robustness import sparseness
from medxai_lib.explain.registry import attribute
from medxai_lib.runner import check_parameters
from medxai_lib.runtime import cache_dir, resolve_device


def test_cache_path_expands_the_home_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MEDXAI_CACHE", "~/medxai-cache")
    assert cache_dir() == tmp_path / "medxai-cache" and (tmp_path / "medxai-cache").is_dir()
    assert not (tmp_path / "~").exists()


def test_unusable_cache_path_names_the_variable(monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("MEDXAI_CACHE", str(blocker / "cache"))
    with pytest.raises(ValueError, match="MEDXAI_CACHE="):
        cache_dir()


@pytest.mark.parametrize("device", ["meta", "xla", "cpu:1"] + ([] if torch.cuda.is_available() else ["cuda", "cuda:7"]))
def test_devices_this_host_lacks_are_refused(device):
    with pytest.raises(ValueError, match="device"):
        resolve_device(device)


def test_mps_is_refused_where_it_is_absent():
    if torch.backends.mps.is_available():
        pytest.skip("this host has MPS")
    with pytest.raises(ValueError, match="MPS"):
        resolve_device("mps")


def test_plain_devices_still_resolve():
    assert resolve_device("cpu") == torch.device("cpu") and resolve_device("auto").type in ("cpu", "cuda", "mps")


def _book(tmp_path, source):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell("x = 1")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "01_x.ipynb"
    nbformat.write(nb, path)
    return path


PARAMS = ('seed = 0\nepochs = 5\nn_images = 40\nlr = 0.001\nthreshold = 0.5   # fraction of the maximum, or "otsu"\n'
          'quick = True\ndata_root = None\nmarker_correlation = 1.0\n')


@pytest.mark.parametrize("overrides, expected", [
    ({"seed": "abc"}, "seed: expected a value like its default 0"),
    ({"seed": -1}, "seed: expected a non-negative int"),
    ({"epochs": -3}, "epochs: expected a positive value"),
    ({"n_images": 0}, "n_images: expected a positive value"),
    ({"epochs": 2.5}, "epochs: expected a value like its default 5"),
    ({"quick": "yes"}, "quick: expected a value like its default True"),
    ({"threshold": "median"}, "threshold: expected a value like its default 0.5"),
    ({"typo_epochs": 3}, "'typo_epochs' is not a parameter of 01_x"),
])
def test_runner_refuses_bad_overrides(tmp_path, overrides, expected):
    problems = check_parameters(_book(tmp_path, PARAMS), overrides)
    assert len(problems) == 1 and expected in problems[0]


def test_runner_accepts_good_overrides(tmp_path):
    good = {"seed": 7, "epochs": 2, "lr": 1, "threshold": "otsu", "quick": False, "data_root": "/data/x",
            "marker_correlation": -0.5}
    assert check_parameters(_book(tmp_path, PARAMS), good) == []


def _run_with(tmp_path, yaml_text):
    """The runner as a user calls it, on one notebook with PARAMS, with ``yaml_text`` as --params."""
    _book(tmp_path, PARAMS)
    params = tmp_path / "bad.yaml"
    params.write_text(yaml_text)
    return subprocess.run([sys.executable, "-m", "medxai_lib.runner", "--notebooks", str(tmp_path), "--out",
                           str(tmp_path / "out"), "--params", str(params)], capture_output=True, text=True)


def test_runner_names_the_file_of_malformed_yaml(tmp_path):
    result = _run_with(tmp_path, "seed: [1, 2\nepochs: 3\n")
    assert result.returncode != 0 and "bad.yaml is not valid YAML" in result.stderr
    assert "Traceback" not in result.stderr


def test_runner_refuses_a_bad_value_before_running_anything(tmp_path):
    result = _run_with(tmp_path, "epochs: -3\n")
    assert result.returncode == 2 and "epochs: expected a positive value" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("phantom", [FundusPhantom, RadiographPhantom, HistologyPhantom, SkinLesionPhantom])
@pytest.mark.parametrize("seed", [-1, 1.5, "3", True])
def test_phantom_seeds_are_checked(phantom, seed):
    with pytest.raises(ValueError, match="seed: expected a non-negative int"):
        phantom(4, size=32, seed=seed)


def test_phantom_accepts_numpy_integer_seeds():
    assert len(FundusPhantom(2, size=32, seed=np.int64(3))) == 2


def test_registry_method_must_be_one_name():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    with pytest.raises(TypeError, match="method: expected one method name"):
        attribute(model, torch.zeros(1, 1, 8, 8), ["grad_cam"])


def test_sparseness_refuses_nan_maps():
    maps = torch.rand(3, 1, 8, 8)
    maps[1, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match=r"map\(s\) \[1\]"):
        sparseness(maps)
    assert sparseness(torch.ones(1, 4, 4)).item() == pytest.approx(0.0, abs=1e-6)
