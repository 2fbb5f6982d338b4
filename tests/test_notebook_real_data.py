"""The notebooks on real-data layouts: with ``data_root`` pointing at a tiny fixture tree each notebook runs to
the end and every checked cell prints CLAIM / IDENTITY / SKIPPED lines -- never nothing."""
from pathlib import Path

import nbformat
import papermill as pm

from medxai_lib.evaluate.claims import parse_line

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _checked_cell_lines(path: Path) -> list[list[str]]:
    """The printed lines of every ``# NBVAL_CHECK_OUTPUT`` cell, one list per cell."""
    cells = []
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in cell.source:
            text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
            cells.append([line for line in text.splitlines() if line.strip()])
    return cells


def test_notebook_03_runs_on_a_mura_tree(tmp_path, monkeypatch):
    from test_mura import build_mura
    root = build_mura(tmp_path / "data")
    monkeypatch.setenv("MEDXAI_STATIC_WIDGETS", "1")
    out = tmp_path / "03.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / "03_cam_vs_gradcam_mura.ipynb"), str(out), cwd=str(NOTEBOOKS),
                        parameters={"data_root": str(root), "image_size": 64, "epochs": 1, "batch_size": 4},
                        kernel_name="python3", progress_bar=False)
    cells = _checked_cell_lines(out)
    assert cells and all(cells), "a checked cell printed nothing"
    parsed = [parse_line(line) for lines in cells for line in lines]
    assert all(p is not None for p in parsed), "a checked line is not CLAIM / IDENTITY / SKIPPED"
    kinds = [p["kind"] for p in parsed]
    assert "SKIPPED" in kinds and "IDENTITY" in kinds
    reasons = " ".join(p["reason"] for p in parsed if p["kind"] == "SKIPPED")
    assert "evidence masks" in reasons and "validation studies" in reasons
