"""`make claims`: the claim x seed table with one verdict per claim, and the list of inconclusive, flipping,
failing or missing checks."""
import importlib.util
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("claims_across_seeds", ROOT / "scripts" / "claims_across_seeds.py")
script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(script)

HOLDS = "CLAIM a beats b | 0.900 [0.850, 0.950] vs random map 0.500 [0.450, 0.550] | verdict: holds"
REFUTED = HOLDS.replace("verdict: holds", "verdict: refuted")
UNSURE = HOLDS.replace("verdict: holds", "verdict: inconclusive")
SKIP = "SKIPPED masks needed | real data without masks"
BROKEN = "IDENTITY x equals y | gap 0.500 | broken by z: gap 1.000 | holds: False"


def _notebook(tmp_path, name, lines):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(...)")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="\n".join(lines) + "\n")]
    nb.cells = [nbformat.v4.new_code_cell("print('unchecked: True')"), cell]
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def test_checked_results_reads_only_checked_cells(tmp_path):
    found = script.checked_results(_notebook(tmp_path, "x", [HOLDS, SKIP, "legacy check: True", "a figure"]))
    assert [r["kind"] for r in found] == ["CLAIM", "SKIPPED"]
    assert found[0]["control"] == "random map" and found[0]["verdict"] == "holds"


def test_one_verdict_on_every_seed_passes_even_when_it_is_refuted(tmp_path):
    ok = script.checked_results(_notebook(tmp_path, "ok", [HOLDS, SKIP]))
    refuted = script.checked_results(_notebook(tmp_path, "r", [REFUTED]))
    out = tmp_path / "claims.md"
    assert script.write_table({"nb": {0: ok, 1: ok}, "nb2": {0: refuted, 1: refuted}}, [0, 1], out,
                              {"nb": {0: 12.0, 1: 30.4}}) == []
    text = out.read_text()
    assert "| CLAIM | a beats b | holds | holds: 0.900 vs random map 0.500 | holds: 0.900 vs random map 0.500 |" in text
    assert "| CLAIM | a beats b | refuted |" in text and "Run time: seed 0 12 s, seed 1 30 s." in text
    assert "none" in text.split("## Inconclusive, flipping, failing or missing")[1]


def test_flipping_inconclusive_failing_and_missing_checks_are_named(tmp_path):
    ok = script.checked_results(_notebook(tmp_path, "ok", [HOLDS, SKIP]))
    flip = script.checked_results(_notebook(tmp_path, "f", [REFUTED, SKIP]))
    unsure = script.checked_results(_notebook(tmp_path, "u", [UNSURE, BROKEN]))
    out = tmp_path / "claims.md"
    failures = script.write_table({"nb": {0: ok, 1: flip, 2: unsure}}, [0, 1, 2], out)
    assert failures == ["nb seed 2: INCONCLUSIVE CLAIM a beats b", "nb: FLIPS CLAIM a beats b (holds, inconclusive, refuted)",
                        "nb seed 2: MISSING SKIPPED masks needed", "nb seed 0: MISSING IDENTITY x equals y",
                        "nb seed 1: MISSING IDENTITY x equals y", "nb seed 2: FAILS IDENTITY x equals y"]
    assert "| CLAIM | a beats b | **FLIPS** |" in out.read_text()


def test_a_narrower_run_merges_with_the_last_results(tmp_path, monkeypatch):
    """`make claims NOTEBOOKS=b` rewrites the page with a's last results kept; papermill is replaced by a copy
    of the notebook whose printed verdict depends on the seed it is given."""
    books = tmp_path / "notebooks"
    books.mkdir()
    for name in ("00_a", "01_b"):
        _notebook(books, name, [HOLDS])

    def execute(src, dst, parameters=None, **_):
        seed = (parameters or {}).get("seed", 0)
        line = REFUTED if (Path(src).stem == "01_b" and seed == 1) else HOLDS
        _notebook(Path(dst).parent, Path(dst).stem, [line])
    monkeypatch.setattr(script.pm, "execute_notebook", execute)
    out = tmp_path / "claims.md"
    assert script.main(["--seeds", "0", "1", "--out", str(out)], books) == 1          # 01_b flips
    assert "01_b: FLIPS CLAIM a beats b" in out.read_text() and out.with_suffix(".json").is_file()
    _notebook(books, "01_b", [HOLDS])
    monkeypatch.setattr(script.pm, "execute_notebook", lambda src, dst, **_: _notebook(Path(dst).parent, Path(dst).stem, [HOLDS]))
    assert script.main(["01_b", "--seeds", "0", "1", "--out", str(out)], books) == 0
    text = out.read_text()
    assert "## 00_a" in text and "## 01_b" in text and "**FLIPS**" not in text and "none" in text.split("## Inconclusive")[1]


def test_keep_leaves_the_executed_notebooks_in_the_folder(tmp_path, monkeypatch):
    books = tmp_path / "notebooks"
    books.mkdir()
    _notebook(books, "00_a", [HOLDS])
    monkeypatch.setattr(script.pm, "execute_notebook", lambda src, dst, **_: _notebook(Path(dst).parent, Path(dst).stem, [HOLDS]))
    kept = tmp_path / "kept"
    assert script.main(["--seeds", "0", "3", "--out", str(tmp_path / "claims.md"), "--keep", str(kept)], books) == 0
    assert sorted(p.name for p in kept.iterdir()) == ["00_a-seed0.ipynb", "00_a-seed3.ipynb"]
