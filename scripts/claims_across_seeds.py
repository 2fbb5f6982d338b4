"""Do the notebooks' checked claims hold for other seeds? Runs each notebook with papermill for every seed,
reads the CLAIM / IDENTITY / SKIPPED lines its ``# NBVAL_CHECK_OUTPUT`` cells print, writes a claim x seed
table to ``runs/claims/claims.md`` (value, strongest control, holds) and exits non-zero naming every claim
that fails (or that a seed did not print at all).

    python scripts/claims_across_seeds.py [--seeds 0 1 2] [--out runs/claims] [NOTEBOOK_STEM ...]
    make claims SEEDS="0 1 2 3 4" [NOTEBOOKS="01_taxonomy"]

Notebooks not yet converted to the claim standard (``tests/test_notebook_claims.py``) still print legacy
``… True/False`` lines; those are tracked too, as kind ``LEGACY``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

import nbformat
import papermill as pm

from medxai_lib.evaluate.claims import parse_line

ROOT = Path(__file__).resolve().parents[1]


def checked_results(notebook: Path) -> list[dict[str, str]]:
    """Parsed CLAIM / IDENTITY / SKIPPED (and legacy True/False) lines of the notebook's checked cells."""
    out = []
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type != "code" or "NBVAL_CHECK_OUTPUT" not in cell.source:
            continue
        for output in cell.get("outputs", []):
            for line in output.get("text", "").splitlines() if output.get("output_type") == "stream" else []:
                parsed = parse_line(line)
                if parsed is None and line.rstrip().endswith(("True", "False")):
                    text = line.strip()
                    parsed = {"kind": "LEGACY", "sentence": text.rsplit(None, 1)[0].rstrip(":"), "value": "",
                              "control": "", "control_value": "", "holds": text.rsplit(None, 1)[1]}
                if parsed is not None:
                    out.append(parsed)
    return out


def cell_text(result: dict[str, str] | None) -> str:
    if result is None:
        return "**missing**"
    if result["kind"] == "SKIPPED":
        return f"skipped: {result['reason']}"
    mark = "holds" if result["holds"] == "True" else "**FAILS**"
    if result["kind"] == "CLAIM":
        return f"{result['value']} vs {result['control']} {result['control_value']}: {mark}"
    if result["kind"] == "IDENTITY":
        return f"gap {result['value']} (broken: {result['control_value']}): {mark}"
    return mark


def write_table(results: dict[str, dict[int, list[dict[str, str]]]], seeds: list[int], path: Path) -> list[str]:
    """Write the claim x seed markdown table; return one line per failing or missing claim."""
    lines = ["# Checked claims across seeds", "", f"Seeds: {', '.join(map(str, seeds))}. Each cell: value vs the "
             "strongest control (CLAIM), the identity's gap and its breaking case's gap (IDENTITY), or the skip "
             "reason.", ""]
    failures = []
    for book, by_seed in results.items():
        sentences: OrderedDict[tuple[str, str], None] = OrderedDict()
        for seed in seeds:
            for r in by_seed.get(seed, []):
                sentences[(r["kind"], r["sentence"])] = None
        lines += [f"## {book}", "", "| kind | claim | " + " | ".join(f"seed {s}" for s in seeds) + " |",
                  "|---|---|" + "---|" * len(seeds)]
        for kind, sentence in sentences:
            cells = []
            for seed in seeds:
                if seed not in by_seed:
                    cells.append("not run")
                    continue
                found = next((r for r in by_seed[seed] if (r["kind"], r["sentence"]) == (kind, sentence)), None)
                cells.append(cell_text(found))
                if found is None:
                    failures.append(f"{book} seed {seed}: MISSING {kind} {sentence}")
                elif found.get("holds") == "False":
                    failures.append(f"{book} seed {seed}: FAILS {kind} {sentence}")
            lines.append(f"| {kind} | {sentence.replace('|', '/')} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Failing", ""] + ([f"- {f}" for f in failures] or ["none"]) + [""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook stems (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "claims")
    args = parser.parse_args()
    books = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.names:
        unknown = set(args.names) - {b.stem for b in books}
        if unknown:
            parser.error(f"names: unknown notebooks {sorted(unknown)}; expected stems of {[b.stem for b in books]}")
        books = [b for b in books if b.stem in set(args.names)]
    results: dict[str, dict[int, list[dict[str, str]]]] = OrderedDict()
    errors = []
    with tempfile.TemporaryDirectory() as tmp:
        for book in books:
            results[book.stem] = {}
            for seed in args.seeds:
                out, start = Path(tmp) / f"{book.stem}-seed{seed}.ipynb", time.perf_counter()
                try:
                    pm.execute_notebook(str(book), str(out), parameters={"seed": seed}, cwd=str(book.parent),
                                        progress_bar=False, kernel_name="python3")
                except pm.PapermillExecutionError as error:
                    errors.append(f"{book.stem} seed {seed}: the notebook raised {error.ename}: {error.evalue}")
                    print(errors[-1], flush=True)
                    continue
                found = checked_results(out)
                results[book.stem][seed] = found
                held = sum(r.get("holds") == "True" for r in found)
                skipped = sum(r["kind"] == "SKIPPED" for r in found)
                print(f"{book.stem} seed {seed}: {held}/{len(found) - skipped} checks hold, {skipped} skipped "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
    failures = errors + write_table(results, args.seeds, args.out / "claims.md")
    print(f"wrote {args.out / 'claims.md'}")
    for failure in failures:
        print(f"    {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
