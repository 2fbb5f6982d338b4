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


def _run_books(tmp_path, bodies, params_yaml):
    """Write one notebook per ``bodies`` entry and run them with ``params_yaml``; returns (exit code, books, out)."""
    books, out = tmp_path / "notebooks", tmp_path / "runs"
    books.mkdir()
    for name, body in bodies.items():
        _notebook(books / name, body)
    params = tmp_path / "p.yaml"
    params.write_text(params_yaml)
    return main(["--notebooks", str(books), "--out", str(out), "--params", str(params)]), books, out


def test_runner_collects_recorded_metrics_and_fails_loudly(tmp_path):
    code, books, out = _run_books(tmp_path, {"01_good.ipynb": "from medxai_lib.runtime import record\nrecord('answer', 21 * scale)",
                                             "02_bad.ipynb": "raise RuntimeError('boom')"}, "scale: 2\n")
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


def test_runner_exports_html_index_memory_and_per_notebook_params(tmp_path):
    body = "from medxai_lib.runtime import record\nrecord('scaled', scale)"
    code, books, out = _run_books(tmp_path, {"01_a.ipynb": body, "02_b.ipynb": body}, "scale: 2\n02_b:\n  scale: 5\n")
    assert code == 0
    data = {r["notebook"]: r for r in json.loads((out / "summary.json").read_text())}
    assert data["01_a.ipynb"]["metrics"] == {"scaled": 2} and data["02_b.ipynb"]["metrics"] == {"scaled": 5}
    assert all(r["peak_mb"] > 10 for r in data.values())           # a python kernel holds tens of MB
    index = (out / "index.html").read_text()
    assert '<a href="01_a.ipynb.html"' not in index and '<a href="01_a.html">01_a.ipynb</a>' in index
    assert '<tr class="" data-metric="scaled"><td>scaled</td><td class="value">5</td>' in index
    assert "<pre>5</pre>" in (out / "02_b.html").read_text()   # the executed output
    assert "peak memory (MB)" in (out / "summary.md").read_text()
    typo = tmp_path / "typo.yaml"
    typo.write_text("03_missing:\n  scale: 1\n")
    result = subprocess.run([sys.executable, "-m", "medxai_lib.runner", "--notebooks", str(books), "--out", str(out),
                             "--params", str(typo)], capture_output=True, text=True)
    assert result.returncode == 2 and "03_missing" in result.stderr
