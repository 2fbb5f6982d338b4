"""The library's import direction: data -> models -> train -> explain -> evaluate -> viz. A module may
import only from its own layer or a lower one (function-level imports included), and explanation,
evaluation and plotting code never imports the training package. Every module has a layer: the top-level
``distributed.py`` (the torchrun launcher of ``train.fit``) sits with training, ``student.py`` with ``runtime``
below everything, and the regression runner (``runner.py`` and its report ``run_report.py``, which reads the
executed notebooks' claim lines with ``evaluate.claims``) on top. Training loops (optimizer steps) live
in ``medxai_lib/train/`` only."""
from __future__ import annotations

import ast
from pathlib import Path


LIB = Path(__file__).resolve().parents[1] / "medxai_lib"
LAYERS = {"runtime": 0, "student": 0, "data": 1, "models": 2, "train": 3, "distributed": 3,
          "explain": 4, "evaluate": 5, "viz": 6, "runner": 7, "run_report": 7}
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


def test_every_library_module_has_a_layer():
    """A module outside LAYERS would escape the check above (as distributed.py once did)."""
    tops = {p.relative_to(LIB).parts[0].removesuffix(".py") for p in LIB.rglob("*.py")} - {"__init__"}
    assert tops - set(LAYERS) == set()
    assert "distributed" in tops and LAYERS["distributed"] == LAYERS["train"]


def test_distributed_is_checked_like_the_training_package(tmp_path):
    (tmp_path / "distributed.py").write_text("def main():\n    from medxai_lib.train import fit\n"
                                             "    from medxai_lib.evaluate.studies.scoreboard import ranks\n")
    assert layering_violations(tmp_path) == ["distributed.py:3 distributed -> medxai_lib.evaluate.studies.scoreboard"]


def _optimizer_names(tree: ast.AST) -> set[str]:
    """Names that ``torch.optim`` optimizers are bound to: ``x = torch.optim.Adam(...)``, ``optim.SGD(...)``
    or a class imported from ``torch.optim`` (schedulers excluded)."""
    imported = {alias.asname or alias.name for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module == "torch.optim" for alias in node.names}
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            func = ast.unparse(node.value.func)
            if (func.split(".")[-1] in imported or func.startswith(("torch.optim.", "optim."))) and "lr_scheduler" not in func:
                bound |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return bound


def training_loops(root: Path = LIB) -> list[str]:
    """Every ``optimizer.step()`` call in ``root``, as ``file:line``: where parameters are trained."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text())
        optimizers = _optimizer_names(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "step"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in optimizers):
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_training_modules_live_in_one_package():
    """The training loops are found (fit, MDNet's joint training, both Patho-GAN players), and all of them
    are in medxai_lib/train/ (not in a top-level module such as the old recipes.py or train_mdnet.py)."""
    loops = training_loops()
    assert {entry.split(":")[0] for entry in loops} == {"train/fit.py", "train/mdnet.py", "train/pathogan.py"}
    assert len([e for e in loops if e.startswith("train/pathogan.py")]) == 2       # generator and discriminator
    assert [e for e in loops if not e.startswith("train/")] == []


def test_the_training_loop_scan_catches_a_loop_outside_train(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "ok.py").write_text("import torch\nopt = torch.optim.SGD([], lr=0.1)\nopt.step()\n")
    (tmp_path / "evaluate").mkdir()
    (tmp_path / "evaluate" / "finetune.py").write_text(
        "from torch.optim import Adam\nfrom torch.optim.lr_scheduler import StepLR\n"
        "def tune(model):\n    opt = Adam(model.parameters())\n    sched = StepLR(opt, 1)\n"
        "    opt.step()\n    sched.step()\n")
    (tmp_path / "train_mdnet.py").write_text("import torch.optim as optim\no = optim.Adam([])\no.step()\n")
    assert training_loops(tmp_path) == ["evaluate/finetune.py:6", "train/ok.py:3", "train_mdnet.py:3"]


def test_evaluate_is_metrics_studies_and_the_claim_core():
    """``evaluate/`` holds the claim core (``stats``, ``claims``) and two packages; metrics never import a study,
    and no library module imports the dev-only peers (pytorch-grad-cam, the agreement harness)."""
    evaluate = LIB / "evaluate"
    assert {p.name for p in evaluate.glob("*.py")} == {"__init__.py", "claims.py", "stats.py"}
    assert {p.name for p in evaluate.iterdir() if p.is_dir() and p.name != "__pycache__"} == {"metrics", "studies"}
    for path in sorted((evaluate / "metrics").glob("*.py")):
        assert not [m for _, m in _imports(path) if m.startswith("medxai_lib.evaluate.studies")], path.name
    for path in sorted(LIB.rglob("*.py")):
        peers = [m for _, m in _imports(path) if m.split(".")[0] in {"pytorch_grad_cam", "peers"}]
        assert peers == [], f"{path.relative_to(LIB)} imports dev-only peers {peers}"
