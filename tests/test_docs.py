"""docs/teaching.md and docs/claims.md list every checked claim the notebooks print (so the lecturer's pages stay
in sync): for CLAIM / IDENTITY / SKIPPED lines their sentence."""
from pathlib import Path

import nbformat

from medxai_lib.evaluate.claims import parse_line

ROOT = Path(__file__).resolve().parents[1]


def checked_lines(path: Path) -> list[str]:
    """Every line the notebook's ``# NBVAL_CHECK_OUTPUT`` cells print."""
    return [line for cell in nbformat.read(path, as_version=4).cells
            if cell.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in cell.source
            for output in cell.get("outputs", []) for line in output.get("text", "").splitlines()]


NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_teaching_page_lists_every_checked_claim():
    page = (ROOT / "docs" / "teaching.md").read_text()
    missing = []
    for path in NOTEBOOKS:
        assert f"### {path.name}" in page, f"docs/teaching.md has no section for {path.name}"
        for line in checked_lines(path):
            parsed = parse_line(line)
            if parsed is not None and parsed["sentence"] not in page:
                missing.append(f"{path.name}: {parsed['sentence']}")
    assert not missing, "claims missing from docs/teaching.md:\n" + "\n".join(missing)


def test_the_claims_page_has_every_checked_claim_of_every_notebook():
    """docs/claims.md is written by `make claims SEEDS="0 1 2 3 4"`; a claim added or reworded in a notebook
    without re-running it would be missing here."""
    page = (ROOT / "docs" / "claims.md").read_text()
    assert page.startswith("# Checked claims across seeds")
    missing = []
    for path in NOTEBOOKS:
        assert f"## {path.stem}" in page, f"docs/claims.md has no section for {path.stem}"
        for line in checked_lines(path):
            parsed = parse_line(line)
            if parsed is not None and parsed["kind"] == "CLAIM" and f"| {parsed['sentence']} |" not in page:
                missing.append(f"{path.stem}: {parsed['sentence']}")
    assert not missing, "claims missing from docs/claims.md (run make claims):\n" + "\n".join(missing)
