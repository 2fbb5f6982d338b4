"""Is every checked claim's verdict the same on every seed? Runs each notebook with papermill for every seed,
reads the CLAIM / IDENTITY / SKIPPED lines its ``# NBVAL_CHECK_OUTPUT`` cells print, writes a claim x seed
table to ``docs/claims.md`` (verdict, value, strongest control; each notebook's run time per seed) and exits
non-zero naming every claim whose verdict is ``inconclusive`` on a seed, differs between seeds, or that a
seed did not print at all, and every identity that does not hold. The parsed lines are kept beside the page
(``docs/claims.json``), so that a run narrowed to some notebooks rewrites the page with the others' last results.

    python scripts/claims_across_seeds.py [--seeds 0 1 2 3 4] [--out docs/claims.md] [NOTEBOOK_STEM ...]
    make claims SEEDS="0 1 2 3 4" [NOTEBOOKS="01_taxonomy"]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter, OrderedDict
from pathlib import Path

import papermill as pm

from medxai_lib.evaluate.claims import checked_results

ROOT = Path(__file__).resolve().parents[1]


def torch_version() -> str:
    import torch
    return torch.__version__


def outcome(result: dict[str, str]) -> str:
    """A claim's verdict, ``holds``/``FAILS`` for an identity, ``skipped`` for a skip."""
    if result["kind"] == "CLAIM":
        return result["verdict"]
    if result["kind"] == "IDENTITY":
        return "holds" if result["holds"] == "True" else "FAILS"
    return "skipped"


def cell_text(result: dict[str, str] | None) -> str:
    if result is None:
        return "**missing**"
    if result["kind"] == "SKIPPED":
        return f"skipped: {result['reason']}"
    mark = outcome(result)
    mark = mark if mark in ("holds", "refuted") else f"**{mark}**"
    if result["kind"] == "CLAIM":
        return f"{mark}: {result['value']} vs {result['control']} {result['control_value']}"
    return f"{mark}: gap {result['value']} (broken: {result['control_value']})"


def write_table(results: dict[str, dict[int, list[dict[str, str]]]], seeds: list[int], path: Path,
                seconds: dict[str, dict[int, float]] | None = None, header: str = "") -> list[str]:
    """Write the claim x seed markdown table; return one line per inconclusive, flipping, failing or missing check."""
    lines = ["# Checked claims across seeds", "",
             "Written by `make claims SEEDS=\"" + " ".join(map(str, seeds)) + "\"` (`scripts/claims_across_seeds.py`); "
             "do not edit by hand. Each cell: the verdict, the tested value and the strongest control's value (CLAIM), "
             "or the identity's gap and its breaking case's gap (IDENTITY), or the skip reason. The column *across "
             "seeds* is the one verdict a claim earns on every seed, or FLIPS.", ""] + ([header, ""] if header else [])
    failures = []
    for book, by_seed in results.items():
        sentences: OrderedDict[tuple[str, str], None] = OrderedDict()
        for seed in seeds:
            for r in by_seed.get(seed, []):
                sentences[(r["kind"], r["sentence"])] = None
        lines += [f"## {book}", ""]
        if seconds and book in seconds:
            lines += ["Run time: " + ", ".join(f"seed {s} {seconds[book][s]:.0f} s" for s in seeds
                                               if s in seconds[book]) + ".", ""]
        lines += ["| kind | claim | across seeds | " + " | ".join(f"seed {s}" for s in seeds) + " |",
                  "|---|---|---|" + "---|" * len(seeds)]
        for kind, sentence in sentences:
            cells, seen = [], set()
            for seed in seeds:
                if seed not in by_seed:
                    cells.append("not run")
                    continue
                found = next((r for r in by_seed[seed] if (r["kind"], r["sentence"]) == (kind, sentence)), None)
                cells.append(cell_text(found))
                if found is None:
                    failures.append(f"{book} seed {seed}: MISSING {kind} {sentence}")
                    continue
                seen.add(outcome(found))
                if outcome(found) in ("inconclusive", "FAILS"):
                    failures.append(f"{book} seed {seed}: {outcome(found).upper()} {kind} {sentence}")
            if len(seen) > 1:
                failures.append(f"{book}: FLIPS {kind} {sentence} ({', '.join(sorted(seen))})")
            across = "**FLIPS**" if len(seen) > 1 else next(iter(seen), "-")
            lines.append(f"| {kind} | {sentence.replace('|', '/')} | {across} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Inconclusive, flipping, failing or missing", ""] + ([f"- {f}" for f in failures] or ["none"]) + [""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return failures


def main(argv: list[str] | None = None, notebooks: Path = ROOT / "notebooks") -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook stems (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "claims.md", help="the markdown file to write")
    parser.add_argument("--keep", type=Path, default=None,
                        help="a folder to keep the executed notebooks in (per-cell durations, outputs); default: discarded")
    parser.add_argument("--write-back", action="store_true",
                        help="run seed 0 with the notebook's own defaults (no injected parameters) and write the "
                             "executed notebook back to notebooks/ (the committed outputs)")
    args = parser.parse_args(argv)
    books = sorted(notebooks.glob("[0-9][0-9]_*.ipynb"))
    if args.names:
        unknown = set(args.names) - {b.stem for b in books}
        if unknown:
            parser.error(f"names: unknown notebooks {sorted(unknown)}; expected stems of {[b.stem for b in books]}")
        books = [b for b in books if b.stem in set(args.names)]
    results: dict[str, dict[int, list[dict[str, str]]]] = OrderedDict()
    seconds: dict[str, dict[int, float]] = {}
    errors = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            tmp = str(args.keep)
        for book in books:
            results[book.stem], seconds[book.stem] = {}, {}
            for seed in args.seeds:
                out, start = Path(tmp) / f"{book.stem}-seed{seed}.ipynb", time.perf_counter()
                in_place = args.write_back and seed == 0
                try:
                    pm.execute_notebook(str(book), str(book if in_place else out),
                                        parameters=None if in_place else {"seed": seed}, cwd=str(book.parent),
                                        progress_bar=False, kernel_name="python3")
                    out = book if in_place else out
                except pm.PapermillExecutionError as error:
                    errors.append(f"{book.stem} seed {seed}: the notebook raised {error.ename}: {error.evalue}")
                    print(errors[-1], flush=True)
                    continue
                found = checked_results(out)
                results[book.stem][seed] = found
                seconds[book.stem][seed] = time.perf_counter() - start
                counts = Counter(outcome(r) for r in found)
                print(f"{book.stem} seed {seed}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) +
                      f" ({seconds[book.stem][seed]:.0f} s)", flush=True)
    record_path = args.out.with_suffix(".json")        # every run's parsed lines, so that a narrower run merges
    all_seeds = list(args.seeds)
    if record_path.is_file() and (args.names or set(args.seeds) != set(json.loads(record_path.read_text())["seeds"])):
        previous = json.loads(record_path.read_text())     # keep what this run did not redo: other notebooks, other seeds
        for book, by_seed in previous["results"].items():
            for seed, found in by_seed.items():
                if int(seed) not in results.get(book, {}):
                    results.setdefault(book, {})[int(seed)] = found
                    seconds.setdefault(book, {})[int(seed)] = previous["seconds"].get(book, {}).get(seed, float("nan"))
        all_seeds = sorted(set(all_seeds) | {int(s) for s in previous["seeds"]})
        results = OrderedDict(sorted(results.items()))
    record_path.parent.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps({"seeds": all_seeds, "results": results, "seconds": seconds}, indent=1))
    header = (f"Run on {os.cpu_count()} CPU cores ({platform.machine()}), torch {torch_version()}, "
              f"{time.strftime('%Y-%m-%d')}; models trained afresh per seed unless cached (`MEDXAI_CACHE`).")
    failures = errors + write_table(results, all_seeds, args.out, seconds, header)
    print(f"wrote {args.out}")
    for failure in failures:
        print(f"    {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
