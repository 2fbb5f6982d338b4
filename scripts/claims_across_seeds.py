"""Do the notebooks' checked claims hold for other seeds? Runs each notebook with papermill for every
seed and checks that every line printed by a ``# NBVAL_CHECK_OUTPUT`` cell that ends in True/False
ends in True.

    python scripts/claims_across_seeds.py [--seeds 0 1 2] [NOTEBOOK_STEM ...]     (make claims)
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import nbformat
import papermill as pm


def claim_lines(notebook: Path) -> list[str]:
    nb = nbformat.read(notebook, as_version=4)
    lines = []
    for cell in nb.cells:
        if cell.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in cell.source:
            for out in cell.get("outputs", []):
                if out.get("output_type") == "stream":
                    lines += [ln for ln in out["text"].splitlines() if ln.rstrip().endswith(("True", "False"))]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args()
    books = sorted(Path("notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.names:
        books = [b for b in books if b.stem in set(args.names)]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for book in books:
            for seed in args.seeds:
                out = Path(tmp) / f"{book.stem}-seed{seed}.ipynb"
                pm.execute_notebook(str(book), str(out), parameters={"seed": seed}, cwd=str(book.parent),
                                    progress_bar=False, kernel_name="python3")
                lines = claim_lines(out)
                bad = [ln for ln in lines if not ln.rstrip().endswith("True")]
                failures += len(bad)
                print(f"{book.stem} seed {seed}: {len(lines) - len(bad)}/{len(lines)} claims hold")
                for ln in bad:
                    print(f"    FAILS: {ln}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
