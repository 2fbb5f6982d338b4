"""docs/teaching.md lists every checked claim the notebooks print (so the lecturer's page stays in sync):
for CLAIM / IDENTITY / SKIPPED lines their sentence, for unconverted notebooks the legacy line."""
import re
from pathlib import Path

import nbformat

from medxai_lib.evaluate.claims import parse_line

ROOT = Path(__file__).resolve().parents[1]


def test_teaching_page_lists_every_checked_claim():
    page = (ROOT / "docs" / "teaching.md").read_text()
    missing = []
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        assert f"### {path.name}" in page, f"docs/teaching.md has no section for {path.name}"
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code" or "NBVAL_CHECK_OUTPUT" not in cell.source:
                continue
            for output in cell.get("outputs", []):
                for line in output.get("text", "").splitlines():
                    parsed = parse_line(line)
                    if parsed is not None:
                        claim = parsed["sentence"]
                    elif line.rstrip().endswith(("True", "False")):      # notebooks not yet converted
                        claim = re.sub(r":?\s*(True|False)$", "", line.strip())
                    else:
                        continue
                    if claim not in page:
                        missing.append(f"{path.name}: {claim}")
    assert not missing, "claims missing from docs/teaching.md:\n" + "\n".join(missing)
