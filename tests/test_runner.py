import json
import subprocess
import sys

import nbformat

from medxai_lib.runner import main


def _notebook(path, body):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("scale = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_runner_collects_recorded_metrics_and_fails_loudly(tmp_path):
    books = tmp_path / "notebooks"
    books.mkdir()
    _notebook(books / "01_good.ipynb", "from medxai_lib.runtime import record\nrecord('answer', 21 * scale)")
    _notebook(books / "02_bad.ipynb", "raise RuntimeError('boom')")
    params = tmp_path / "p.yaml"
    params.write_text("scale: 2\n")
    out = tmp_path / "runs"
    code = main(["--notebooks", str(books), "--out", str(out), "--params", str(params)])
    assert code == 1
    summary = (out / "summary.md").read_text()
    assert "| 01_good.ipynb | ok |" in summary and "answer=42" in summary
    assert "02_bad.ipynb | failed" in summary and "boom" in summary
    data = json.loads((out / "summary.json").read_text())
    assert data[0]["metrics"] == {"answer": 42} and (out / "01_good.ipynb").exists()
    assert main(["--notebooks", str(books), "--out", str(out), "01_good"]) == 0


def test_runner_rejects_unknown_notebook(tmp_path):
    (tmp_path / "nb").mkdir()
    _notebook(tmp_path / "nb" / "01_x.ipynb", "pass")
    result = subprocess.run([sys.executable, "-m", "medxai_lib.runner", "--notebooks", str(tmp_path / "nb"),
                             "--out", str(tmp_path / "o"), "09_missing"], capture_output=True, text=True)
    assert result.returncode == 2 and "unknown notebooks" in result.stderr
