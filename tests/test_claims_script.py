"""`make claims`: the claim x seed table and the list of failing or missing claims."""
import importlib.util
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("claims_across_seeds", ROOT / "scripts" / "claims_across_seeds.py")
script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(script)

HOLDS = "CLAIM a beats b | 0.900 [0.850, 0.950] vs random map 0.500 [0.450, 0.550] | holds: True"
FAILS = HOLDS.replace("holds: True", "holds: False")
SKIP = "SKIPPED masks needed | real data without masks"


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
    assert [r["kind"] for r in found] == ["CLAIM", "SKIPPED", "LEGACY"]
    assert found[0]["control"] == "random map" and found[2]["holds"] == "True"


def test_table_names_failing_and_missing_claims(tmp_path):
    ok = script.checked_results(_notebook(tmp_path, "ok", [HOLDS, SKIP]))
    bad = script.checked_results(_notebook(tmp_path, "bad", [FAILS]))
    out = tmp_path / "claims.md"
    failures = script.write_table({"nb": {0: ok, 1: bad}}, [0, 1], out)
    assert failures == ["nb seed 1: FAILS CLAIM a beats b", "nb seed 1: MISSING SKIPPED masks needed"]
    text = out.read_text()
    assert "| CLAIM | a beats b | 0.900 vs random map 0.500: holds | 0.900 vs random map 0.500: **FAILS** |" in text
    assert script.write_table({"nb": {0: ok, 1: ok}}, [0, 1], out) == []
    assert "none" in out.read_text().split("## Failing")[1]
