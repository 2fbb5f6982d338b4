"""The claim standard v2 in the notebooks: every line a ``# NBVAL_CHECK_OUTPUT`` cell prints is a CLAIM,
IDENTITY or SKIPPED line (``medxai_lib.evaluate.claims``), every CLAIM names a control and has a verdict
that is not ``inconclusive`` (``refuted`` is a finding and allowed), every IDENTITY holds, and no notebook
calls the removed "shown, not claimed" table API (``ClaimResult.table()``)."""
from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from medxai_lib.evaluate.claims import parse_line

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
NO_CONTROL = {"", "none", "nothing", "no control", "-"}


def checked_lines(path: Path) -> list[str]:
    """Every non-empty line printed (stream output) by the notebook's ``# NBVAL_CHECK_OUTPUT`` cells."""
    lines = []
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in cell.source:
            for out in cell.get("outputs", []):
                if out.get("output_type") == "stream":
                    lines += [ln for ln in out.get("text", "").splitlines() if ln.strip()]
                elif out.get("output_type") in ("execute_result", "display_data", "error"):
                    lines.append(f"<{out['output_type']} output>")
    return lines


def standard_violations(lines: list[str]) -> list[str]:
    """What in ``lines`` breaks the claim standard (empty when every line is a valid, holding check)."""
    bad = []
    for line in lines:
        parsed = parse_line(line)
        if parsed is None:
            bad.append(f"not a CLAIM/IDENTITY/SKIPPED line: {line}")
        elif parsed["kind"] == "CLAIM" and parsed["control"].strip().lower() in NO_CONTROL:
            bad.append(f"a claim without a control: {line}")
        elif parsed["kind"] == "CLAIM" and parsed["verdict"] == "inconclusive":
            bad.append(f"an inconclusive claim in the committed output (collect more units or restate it): {line}")
        elif parsed["kind"] == "IDENTITY" and parsed["holds"] != "True":
            bad.append(f"an identity that does not hold in the committed output: {line}")
    if not any(parse_line(ln) and parse_line(ln)["kind"] in ("CLAIM", "IDENTITY") for ln in lines):
        bad.append("no CLAIM or IDENTITY line at all")
    return bad


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_checked_cells_follow_the_claim_standard(path):
    assert standard_violations(checked_lines(path)) == []


def removed_api_calls(source: str) -> list[str]:
    """Calls of the removed table API: ``.table()`` on a ``claim(...)`` call or on a name bound to one."""
    try:
        tree = ast.parse(source)
    except SyntaxError:                          # IPython magics: judge the Python lines only
        tree = ast.parse("\n".join(ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))))
    is_claim = lambda node: (isinstance(node, ast.Call) and  # noqa: E731
                             getattr(node.func, "id", getattr(node.func, "attr", None)) == "claim")
    bound = {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign) and is_claim(node.value)
             for t in node.targets if isinstance(t, ast.Name)}
    return [ast.unparse(node) for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "table"
            and (is_claim(node.func.value) or getattr(node.func.value, "id", None) in bound)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_no_notebook_shows_a_controlled_comparison_without_a_verdict(path):
    cells = nbformat.read(path, as_version=4).cells
    assert [c for cell in cells if cell.cell_type == "code" for c in removed_api_calls(cell.source)] == []


def test_the_standard_rejects_what_it_should():
    good = "CLAIM a beats b | 0.900 [0.850, 0.950] vs random map 0.500 [0.450, 0.550] | verdict: holds"
    assert standard_violations([good]) == []
    assert standard_violations([good.replace("holds", "refuted")]) == []
    assert standard_violations(["accuracy > 0.5: True"])
    assert standard_violations([good.replace("holds", "inconclusive")])
    assert standard_violations([good.replace("verdict: holds", "holds: True")])      # the v1 line
    assert standard_violations([good.replace("vs random map", "vs none")])
    assert standard_violations(["IDENTITY x | gap 0.000 | broken by y: gap 1.000 | holds: False"])
    assert standard_violations(["SKIPPED x | no masks"]) == ["no CLAIM or IDENTITY line at all"]
    assert removed_api_calls('pd.DataFrame(claim("x", np.abs(f(a).g()), {"c": f(b)}, margin=0.1).table())')
    assert removed_api_calls('r = claim("x", a, {"c": b})\nshow(r.table())')
    assert not removed_api_calls("fig = plot_randomisation(cascade.table())")
