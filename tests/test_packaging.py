"""The package installs as declared: every third-party module ``medxai_lib`` imports at run time is a declared
dependency (read from the source with ``ast``, not by importing), optional parts say what is missing, and the
wheel holds every file of the package."""
from __future__ import annotations

import ast
import importlib
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "medxai_lib"
# import name -> distribution, where they differ and the installed metadata cannot tell (not installed here)
KNOWN = {"sklearn": "scikit-learn", "skimage": "scikit-image", "PIL": "pillow", "yaml": "pyyaml",
         "IPython": "ipython", "matplotlib_inline": "matplotlib-inline", "cv2": "opencv-python-headless"}
# optional parts: imported only inside the function that needs them, declared in an extra, with a clear message
OPTIONAL = {"pycocoevalcap": "METEOR (pycocoevalcap's jar, run with java)"}


def normalise(name: str) -> str:
    """PEP 503 form of a distribution name (``Rouge_Score`` -> ``rouge-score``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalise(re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0])


def _guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Inside ``if TYPE_CHECKING:`` or a ``try`` that catches ImportError / ModuleNotFoundError."""
    while node in parents:
        node, child = parents[node], node
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) and child in node.body:
            return True
        if isinstance(node, ast.Try) and child in node.body and any(
                h.type is not None and re.search(r"\b(ImportError|ModuleNotFoundError)\b", ast.unparse(h.type))
                for h in node.handlers):
            return True
    return False


def third_party_imports(package: Path = PACKAGE) -> dict[str, dict[str, list[str]]]:
    """Top-level module -> ``{"module": [files importing it at module level], "function": [...inside a function],
    "guarded": [...inside try/except ImportError or TYPE_CHECKING]}`` for every module outside the standard
    library and the package itself."""
    found: dict[str, dict[str, list[str]]] = {}
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            where, up = "module", node
            while up in parents:
                up = parents[up]
                if isinstance(up, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                    where = "function"
                    break
            if _guarded(node, parents):
                where = "guarded"
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == package.name or top == "__future__":
                    continue
                files = found.setdefault(top, {"module": [], "function": [], "guarded": []})[where]
                files.append(path.relative_to(package.parent).as_posix())
    return found


def distribution_of(module: str) -> str:
    """The distribution that provides ``module`` (installed metadata, else the table ``KNOWN``, else the name)."""
    installed = packages_distributions().get(module)
    if installed:
        return normalise(installed[0])
    return normalise(KNOWN.get(module, module))


def undeclared(imports: dict[str, dict[str, list[str]]], project: dict) -> list[str]:
    """Gaps between ``imports`` and ``project`` (pyproject's ``[project]`` table): runtime imports that are
    not runtime dependencies, and optional imports that no extra declares or that run at module level."""
    runtime = {requirement_name(r) for r in project["dependencies"]}
    extras = {requirement_name(r) for extra in project.get("optional-dependencies", {}).values() for r in extra}
    gaps = []
    for module, where in sorted(imports.items()):
        distribution = distribution_of(module)
        files = sorted(set(where["module"] + where["function"] + where["guarded"]))
        if module in OPTIONAL:
            if where["module"]:
                gaps.append(f"{module} (optional: {OPTIONAL[module]}) is imported at module level in {where['module']}")
            if distribution not in runtime | extras:
                gaps.append(f"{module} (optional) is declared in no extra of pyproject.toml")
        elif distribution not in runtime:
            gaps.append(f"{module} (distribution {distribution}) is imported by {files} but is not in "
                        "[project].dependencies")
    return gaps


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_every_runtime_import_is_a_declared_dependency():
    imports = third_party_imports()
    assert {"torch", "numpy", "captum"} <= set(imports), "the import scan found too little"
    gaps = undeclared(imports, _project())
    assert not gaps, "install as declared and these imports fail:\n" + "\n".join(gaps)


def test_the_check_fails_when_captum_is_only_a_dev_extra():
    project = _project()
    assert any(requirement_name(r) == "captum" for r in project["dependencies"])
    moved = {**project, "dependencies": [r for r in project["dependencies"] if requirement_name(r) != "captum"],
             "optional-dependencies": {**project["optional-dependencies"],
                                       "dev": project["optional-dependencies"]["dev"] + ["captum>=0.8"]}}
    gaps = undeclared(third_party_imports(), moved)
    assert len(gaps) == 1 and gaps[0].startswith("captum (distribution captum) is imported by ['medxai_lib/")


def test_import_names_map_to_their_distributions():
    assert [distribution_of(m) for m in ("sklearn", "skimage", "PIL", "yaml")] == \
        ["scikit-learn", "scikit-image", "pillow", "pyyaml"]
    scan = third_party_imports()
    assert "nbformat" in scan and "json" not in scan and "medxai_lib" not in scan


def test_optional_parts_are_imported_lazily_and_say_what_is_missing(monkeypatch):
    scan = third_party_imports()
    for module in OPTIONAL:
        assert scan[module]["function"] and not scan[module]["module"], scan[module]
    text_module = scan["pycocoevalcap"]["function"][0].removesuffix(".py").replace("/", ".")
    text = importlib.import_module(text_module)
    monkeypatch.setitem(sys.modules, "pycocoevalcap", None)          # as if it were not installed
    assert text.meteor_available() is False
    with pytest.raises(RuntimeError, match=r"meteor: needs `java` on the PATH and pycocoevalcap"):
        text.meteor([["a", "b"]], [[["a", "b"]]])


def test_the_wheel_holds_every_file_of_the_package(tmp_path):
    source = tmp_path / "src"                      # a copy: setuptools writes build/ and *.egg-info beside the source
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(PACKAGE, source / PACKAGE.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "--disable-pip-version-check", "-q", "-w", str(tmp_path / "dist"), str(source)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    wheels = list((tmp_path / "dist").glob("medxai_lib-*.whl"))
    assert len(wheels) == 1
    with zipfile.ZipFile(wheels[0]) as wheel:
        inside = set(wheel.namelist())
        metadata = wheel.read(next(n for n in inside if n.endswith(".dist-info/METADATA"))).decode()
    files = {p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*")
             if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    assert not files - inside, f"missing from the wheel: {sorted(files - inside)}"
    assert "Requires-Dist: captum>=0.8" in metadata


def test_make_test_notebooks_runs_every_notebook_once_slowest_first_with_one_thread_per_kernel():
    """nbval's notebook list is built by the Makefile (slowest first, then the rest): a notebook left out would
    never be tested, one listed twice would run twice; two kernels on two cores must not oversubscribe them."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    dry = subprocess.run(["make", "-n", "-o", "install", "test-notebooks"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    listed = re.findall(r"notebooks/\d\d_[\w-]+\.ipynb", dry)
    on_disk = sorted(f"notebooks/{p.name}" for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(listed) == on_disk and len(set(listed)) == len(listed)
    assert listed[0].startswith("notebooks/06_")
    assert "OMP_NUM_THREADS=1" in dry and "--dist loadfile" in dry and "--nbval-lax" in dry
