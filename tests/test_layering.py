"""The library's import direction: data -> models -> train -> explain -> evaluate -> viz. A module may
import only from its own layer or a lower one (function-level imports included), and explanation,
evaluation and plotting code never imports the training package."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "medxai_lib"
LAYERS = {"runtime": 0, "data": 1, "models": 2, "train": 3, "explain": 4, "evaluate": 5, "viz": 6}
NO_TRAINING = {"explain", "evaluate", "viz"}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "medxai_lib" and parts[1] in LAYERS else None


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
    return out


def layering_violations(root: Path = LIB) -> list[str]:
    """Every import in ``root`` that goes against the layer order, as ``file:line own -> imported``."""
    bad = []
    for path in sorted(root.rglob("*.py")):
        own = _layer("medxai_lib." + ".".join(path.relative_to(root).with_suffix("").parts))
        if own is None:
            continue
        for line, module in _imports(path):
            other = _layer(module)
            if other is None:
                continue
            if LAYERS[other] > LAYERS[own] or (own in NO_TRAINING and other == "train"):
                bad.append(f"{path.relative_to(root)}:{line} {own} -> {module}")
    return bad


def test_library_imports_follow_the_layer_order():
    assert layering_violations() == []


def test_the_check_catches_a_backward_import(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "bad.py").write_text("from medxai_lib.explain.cam import grad_cam\n")
    (tmp_path / "evaluate").mkdir()
    (tmp_path / "evaluate" / "bad.py").write_text("def f():\n    from medxai_lib.train.fit import fit\n")
    (tmp_path / "viz").mkdir()
    (tmp_path / "viz" / "ok.py").write_text("from medxai_lib.evaluate import energy_in_mask\n")
    found = layering_violations(tmp_path)
    assert found == ["data/bad.py:1 data -> medxai_lib.explain.cam", "evaluate/bad.py:2 evaluate -> medxai_lib.train.fit"]


@pytest.mark.parametrize("old", ["medxai_lib.recipes", "medxai_lib.train_mdnet", "medxai_lib.train_pathogan"])
def test_training_modules_live_in_one_package(old):
    assert not (LIB / (old.split(".")[1] + ".py")).exists()
