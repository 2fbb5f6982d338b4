"""Student copies of the notebooks: cells tagged ``solution`` are emptied (a prompt stays), every output
is cleared, so students run the story themselves and write the exercises' code.

    python -m medxai_lib.student [--src notebooks] [--out notebooks-student]
"""
from __future__ import annotations

import argparse
from copy import deepcopy
import sys
from pathlib import Path
from typing import Sequence

import nbformat

SOLUTION_TAG = "solution"
PROMPT = "# Exercise: write your solution here.\n"


def student_copy(notebook: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, int]:
    """A copy with solution cells emptied and all outputs cleared; returns ``(copy, solutions removed)``."""
    copy = deepcopy(notebook)
    removed = 0
    for cell in copy.cells:
        if SOLUTION_TAG in cell.get("metadata", {}).get("tags", []):
            if cell.cell_type == "code":
                cell.source = PROMPT
            else:
                cell.source = "*Your answer here.*"
            removed += 1
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
    return copy, removed


def write_student_copies(src: Path, out: Path) -> dict[str, int]:
    """Write a student copy of every ``NN_*.ipynb`` in ``src`` to ``out``; returns solutions removed per notebook."""
    notebooks = sorted(Path(src).glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"src: no notebooks matching NN_*.ipynb in {str(src)!r}")
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for path in notebooks:
        copy, counts[path.name] = student_copy(nbformat.read(path, as_version=4))
        nbformat.validate(copy)
        nbformat.write(copy, out / path.name)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write student copies of the notebooks (solutions removed).")
    parser.add_argument("--src", default="notebooks")
    parser.add_argument("--out", default="notebooks-student")
    args = parser.parse_args(argv)
    counts = write_student_copies(Path(args.src), Path(args.out))
    for name, n in counts.items():
        print(f"{name}: {n} solution cell(s) removed")
    print(f"wrote {len(counts)} notebooks to {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
