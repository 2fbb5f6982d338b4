"""A notebook runs where a student opens it: a copy in a folder outside the repository, the kernel's working
directory there (papermill ``cwd``), ``medxai_lib`` coming from the installed package and a fresh cache.

EXECUTES A NOTEBOOK (marker ``executes_notebook``): only ``00_start_here``, the fastest one (10-25 s on two CPU
cores, docs/teaching.md). Deselect with ``-m "not executes_notebook"``.
"""
from pathlib import Path

import nbformat
import pytest

from medxai_lib.evaluate.claims import checked_results

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "00_start_here.ipynb"


def _verdicts(path: Path) -> list[tuple[str, str, str]]:
    """``(kind, sentence, verdict)`` of every checked line of an executed notebook, digits left out."""
    return [(c["kind"], c["sentence"], c.get("verdict", c.get("holds", ""))) for c in checked_results(path)]


@pytest.mark.executes_notebook
def test_start_here_runs_with_its_working_directory_outside_the_repository(tmp_path, monkeypatch):
    import papermill as pm

    work = tmp_path / "student"
    work.mkdir()
    assert ROOT not in work.resolve().parents
    source = work / NOTEBOOK.name
    source.write_bytes(NOTEBOOK.read_bytes())
    monkeypatch.setenv("MEDXAI_STATIC_WIDGETS", "1")
    monkeypatch.setenv("MEDXAI_PROGRESS", "0")
    monkeypatch.chdir(work)
    executed = work / "executed.ipynb"
    pm.execute_notebook(str(source), str(executed), cwd=str(work), kernel_name="python3", progress_bar=False,
                        log_output=False, execution_timeout=600)
    result = nbformat.read(executed, as_version=4)
    errors = [o for c in result.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, f"{NOTEBOOK.name} failed outside the repository: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    committed = _verdicts(NOTEBOOK)
    assert committed and _verdicts(executed) == committed
