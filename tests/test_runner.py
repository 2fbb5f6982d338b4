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


def test_baselines_fail_loudly_naming_the_metric(tmp_path):
    from medxai_lib.runner import compare_baselines
    books = tmp_path / "notebooks"
    books.mkdir()
    _notebook(books / "01_good.ipynb", "from medxai_lib.runtime import record\nrecord('answer', 21 * scale)")
    loose = tmp_path / "loose.json"
    loose.write_text(json.dumps({"01_good": {"answer": {"value": 22, "tolerance": 2, "direction": "higher"}}}))
    tight = tmp_path / "tight.json"
    tight.write_text(json.dumps({"01_good": {"answer": {"value": 30, "tolerance": 1, "direction": "higher"}}}))
    out = tmp_path / "runs"
    assert main(["--notebooks", str(books), "--out", str(out), "--baselines", str(loose)]) == 0
    assert main(["--notebooks", str(books), "--out", str(out), "--baselines", str(tight)]) == 1
    summary = (out / "summary.md").read_text()
    assert "01_good: answer = 21 regressed from baseline 30" in summary
    results = [{"notebook": "01_good.ipynb", "metrics": {"answer": 21}}]
    assert compare_baselines(results, {"01_good": {"missing": {"value": 1}}}) == ["01_good: metric 'missing' was not recorded"]
    assert compare_baselines(results, {"01_good": {"answer": {"value": 25, "tolerance": 5, "direction": "lower"}}}) == []
    assert len(compare_baselines(results, {"01_good": {"answer": {"value": 25, "tolerance": 3, "direction": "both"}}})) == 1


def test_the_repository_baselines_are_well_formed():
    from pathlib import Path
    data = json.loads((Path(__file__).parent / "baselines.json").read_text())
    assert set(data) >= {"03_cam_vs_gradcam_mura", "04_attribution_and_perturbation", "05_mdnet_reports"}
    for metrics in data.values():
        for spec in metrics.values():
            assert spec["direction"] in ("higher", "lower", "both") and spec["tolerance"] >= 0
