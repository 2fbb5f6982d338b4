"""The regression report of ``make run`` (runs/latest/index.html and runs/history.jsonl), tested by its content on
synthetic run results: no notebook is executed (``run_notebook`` is replaced where ``main`` runs)."""
import json
import re
from datetime import datetime, timezone

import nbformat
import pytest

from medxai_lib import runner
from medxai_lib.evaluate.claims import checked_results
from medxai_lib.run_report import (append_history, history_entry, metric_history, metric_rows, read_history, sparkline,
                                   verdict_counts, write_index)

BASELINES = {"01_a": {"auroc": {"value": 0.9, "tolerance": 0.05, "direction": "higher"},
                      "gap": {"value": 0.0, "tolerance": 1e-5, "direction": "lower"},
                      "lost": {"value": 1.0, "tolerance": 0.1, "direction": "both"}}}
CLAIMS = ["CLAIM the map beats chance (margin 0.100) | 0.700 [0.600, 0.800] vs random map 0.100 [0.050, 0.150] | verdict: holds",
          "CLAIM the edge map loses (margin 0.050) | 0.300 [0.250, 0.350] vs Sobel edges 0.400 [0.350, 0.450] | verdict: refuted",
          "IDENTITY Grad-CAM equals CAM | gap 1.2e-07 | broken by a pre-ReLU hook: gap 0.31 | holds: True",
          "SKIPPED the padding claim | no phantom markers"]


def _result(name="01_a.ipynb", metrics=None, claims=(), status="ok"):
    return {"notebook": name, "status": status, "wall_s": 12.5, "peak_mb": 900.0, "error": "",
            "metrics": {"auroc": 0.8, "gap": 2e-7, "extra": 3} if metrics is None else metrics,
            "html": name.replace(".ipynb", ".html"), "claims": list(claims)}


def _executed(path, lines, unchecked=("CLAIM not checked | 1.0 [1.0, 1.0] vs x 0.0 [0.0, 0.0] | verdict: holds",)):
    """An executed-looking notebook (outputs written, nothing run): one checked cell printing ``lines``."""
    nb = nbformat.v4.new_notebook()
    checked = nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(claims)")
    checked.outputs = [nbformat.v4.new_output("stream", name="stdout", text="\n".join(lines) + "\nother text\n")]
    loose = nbformat.v4.new_code_cell("print(x)")
    loose.outputs = [nbformat.v4.new_output("stream", name="stdout", text="\n".join(unchecked) + "\n")]
    nb.cells = [checked, loose]
    nbformat.write(nb, path)
    return path


def _row(page, metric):
    match = re.search(rf'<tr class="[^"]*" data-metric="{metric}">.*?</tr>', page)
    assert match, f"no row for {metric}"
    return match.group(0)


def test_metric_rows_flag_values_outside_their_baseline():
    rows = {r["metric"]: r for r in metric_rows(_result(), BASELINES["01_a"])}
    assert rows["auroc"]["state"] == "outside"                         # 0.8 < 0.9 - 0.05, higher is better
    assert rows["gap"]["state"] == "within"                            # 2e-7 <= 0 + 1e-5
    assert rows["lost"]["state"] == "not recorded" and rows["lost"]["value"] is None
    assert rows["extra"]["state"] == "no baseline" and rows["extra"]["baseline"] is None
    assert rows["auroc"] | {"state": None} == {"metric": "auroc", "value": 0.8, "baseline": 0.9, "tolerance": 0.05,
                                               "direction": "higher", "state": None}
    assert metric_rows(_result(metrics={"auroc": 0.86}), BASELINES["01_a"])[0]["state"] == "within"
    with pytest.raises(ValueError, match=r"01_a.auroc has direction 'up'"):
        metric_rows(_result(), {"auroc": {"value": 1, "direction": "up"}})


def test_compare_baselines_keeps_its_messages():
    problems = runner.compare_baselines([_result()], BASELINES)
    assert problems == ["01_a: auroc = 0.8 regressed from baseline 0.9 (tolerance 0.05, higher is better)",
                        "01_a: metric 'lost' was not recorded"]


def test_the_page_shows_each_metric_beside_baseline_tolerance_and_direction(tmp_path):
    result = _result(claims=[])
    page = write_index([result], tmp_path, runner.compare_baselines([result], BASELINES), baselines=BASELINES,
                       history=[history_entry([result])]).read_text()
    auroc = _row(page, "auroc")
    assert 'class="bad"' in auroc and re.search(r"<td class=\"value\">0.8</td><td>0.9</td><td>0.05</td><td>higher</td>"
                                               r"<td class=\"state\">outside</td>", auroc)
    assert _row(page, "gap").startswith('<tr class="ok"') and "<td>1e-05</td><td>lower</td>" in _row(page, "gap")
    assert "not recorded" in _row(page, "lost") and _row(page, "lost").startswith('<tr class="bad"')
    assert "no baseline" in _row(page, "extra")
    assert '2 outside: auroc, lost' in page and '<a href="01_a.html">01_a.ipynb</a>' in page
    assert "01_a: auroc = 0.8 regressed from baseline 0.9" in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page) and "<script" not in page   # self-contained


def test_overridden_runs_say_no_baseline_was_compared(tmp_path):
    page = write_index([_result()], tmp_path, baselines=None).read_text()
    assert "no baselines compared" in page and "outside" not in _row(page, "auroc")


def test_history_is_appended_per_run_and_plotted_per_metric(tmp_path):
    path = tmp_path / "runs" / "history.jsonl"
    when = datetime(2026, 12, 1, tzinfo=timezone.utc)
    for auroc in (0.95, 0.92, 0.80):
        append_history(path, history_entry([_result(metrics={"auroc": auroc, "flag": True})], when=when))
    append_history(path, history_entry([_result(metrics={"auroc": 0.1})], params="configs/full.yaml"))
    history = read_history(path)
    assert len(path.read_text().splitlines()) == 4 and history[0]["time"] == "2026-12-01T00:00:00+00:00"
    assert history[0]["notebooks"]["01_a"]["metrics"] == {"auroc": 0.95, "flag": True}
    assert metric_history(history, "01_a", "auroc") == [0.95, 0.92, 0.80]          # default-parameter runs only
    assert metric_history(history, "01_a", "auroc", "configs/full.yaml") == [0.1]
    assert metric_history(history, "01_a", "flag") == []                          # booleans are not plotted
    page = write_index([_result(metrics={"auroc": 0.80})], tmp_path, baselines=BASELINES, history=history).read_text()
    svg = re.search(r"<svg class=\"spark\".*?</svg>", _row(page, "auroc")).group(0)
    points = re.search(r'<polyline points="([^"]+)"', svg).group(1).split()
    assert len(points) == 3 and "<title>0.95, 0.92, 0.8</title>" in svg
    ys = [float(p.split(",")[1]) for p in points]
    assert ys[0] < ys[1] < ys[2]                                   # falling values drawn lower (SVG y grows down)
    assert 'fill="#b00"' in svg and '<rect class="band"' in svg    # last run outside the shaded accepted band
    assert "3 run(s)" in _row(page, "auroc") and "History: 3 run(s) with the default parameters" in page


def test_sparkline_marks_a_last_value_inside_the_band_and_draws_nothing_without_history():
    spec = BASELINES["01_a"]["auroc"]
    assert sparkline([], spec) == ""
    inside = sparkline([0.7, 0.9], spec)
    assert 'fill="#336"/></svg>' in inside and 'fill="#b00"' not in inside
    single = sparkline([0.5])
    assert "<circle" in single and "<rect" not in single


def test_a_broken_history_line_is_named(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text('{"time": "t", "notebooks": {}}\nnot json\n')
    with pytest.raises(ValueError, match=r"history.jsonl:2: not a run record"):
        read_history(path)
    assert read_history(tmp_path / "absent.jsonl") == []


def test_claims_column_lists_the_executed_notebooks_verdicts(tmp_path):
    claims = checked_results(_executed(tmp_path / "01_a.ipynb", CLAIMS))
    assert [c["kind"] for c in claims] == ["CLAIM", "CLAIM", "IDENTITY", "SKIPPED"]   # the unchecked cell is ignored
    assert verdict_counts(claims) == {"holds": 1, "refuted": 1, "identity holds": 1, "skipped": 1}
    page = write_index([_result(claims=claims)], tmp_path, baselines=BASELINES).read_text()
    cell = re.search(r'<td class="claims">(.*?)</td>', page).group(1)
    assert "1 holds" in cell and "1 refuted" in cell and "1 identity holds" in cell and "1 skipped" in cell
    assert "<b>refuted</b>: the edge map loses (margin 0.050)" in cell and "not checked" not in cell
    bad = checked_results(_executed(tmp_path / "02_b.ipynb", [CLAIMS[0].replace("holds", "inconclusive")]))
    page = write_index([_result(claims=bad)], tmp_path, baselines=BASELINES).read_text()
    assert '<span class="bad">1 inconclusive</span>' in page


def _notebook(path):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("seed = 0")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_make_run_appends_the_history_and_writes_the_page_with_baselines(tmp_path, monkeypatch):
    books, out = tmp_path / "notebooks", tmp_path / "runs" / "latest"
    books.mkdir()
    _notebook(books / "01_a.ipynb")
    baselines = tmp_path / "baselines.json"
    baselines.write_text(json.dumps(BASELINES))
    runs = iter([0.95, 0.80])

    def fake_run(notebook, out_dir, parameters=None, timeout_s=1800):   # no kernel, no notebook executed
        out_dir.mkdir(parents=True, exist_ok=True)
        executed = _executed(out_dir / notebook.name, CLAIMS)
        return _result(notebook.name, {"auroc": next(runs), "gap": 0.0, "lost": 1.0}, checked_results(executed))

    monkeypatch.setattr(runner, "run_notebook", fake_run)
    argv = ["--notebooks", str(books), "--out", str(out), "--baselines", str(baselines)]
    assert runner.main(argv) == 0
    assert runner.main(argv) == 1                                        # 0.80 regressed
    history = [json.loads(line) for line in (tmp_path / "runs" / "history.jsonl").read_text().splitlines()]
    assert [h["notebooks"]["01_a"]["metrics"]["auroc"] for h in history] == [0.95, 0.80]
    assert history[1]["notebooks"]["01_a"]["claims"] == {"holds": 1, "refuted": 1, "identity holds": 1, "skipped": 1}
    page = (out / "index.html").read_text()
    assert "<title>0.95, 0.8</title>" in _row(page, "auroc") and "outside" in _row(page, "auroc")
    assert "1 refuted" in page and "| 1 holds, 1 refuted, 1 identity holds, 1 skipped |" in (out / "summary.md").read_text()
    (tmp_path / "runs" / "history.jsonl").write_text("{broken\n")
    with pytest.raises(SystemExit) as stop:                               # before any notebook runs
        runner.main(argv)
    assert stop.value.code == 2
