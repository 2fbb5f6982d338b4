"""Build the course website: the committed notebooks (never executed) and the docs pages as static HTML.

    python site/build.py [--out build/site]        # make site

The sources are copied (not linked) into a staging folder that mirrors the repository, so relative links
such as ``../data/README.md`` keep working; cells tagged ``solution`` are collapsed behind a "Show solution"
toggle in the staged copies only; the navigation follows the lecture order of ``docs/teaching.md``. Sphinx
runs with ``-W`` (a warning fails the build) and its doctrees and ``jupyter_execute/`` stay out of ``--out``.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import nbformat

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = Path(__file__).resolve().parent
PAGES = ("README.md", "docs/teaching.md", "docs/claims.md", "docs/benchmarks.md", "docs/reliability.md",
         "docs/pathogan_ablations.md", "docs/pathogan_global_sweep.md", "docs/mdnet_seed_comparisons.md", "docs/histology_readability.md",
         "data/README.md")
SOLUTION_TAG = "solution"
SHOW, HIDE = "Show solution", "Hide solution"


def lecture_order(teaching: str, notebooks: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``[(caption, [notebook stem, ...]), ...]`` from the "A suggested order" table of ``docs/teaching.md``
    (rows ``| lecture | notebook | idea |``, notebooks named by their two-digit number); notebooks the table
    does not name follow under "More notebooks". Raises ``ValueError`` naming a number no notebook has."""
    by_number = {Path(n).name[:2]: Path(n).stem for n in notebooks}
    section = teaching.split("## A suggested order", 1)
    if len(section) != 2:
        raise ValueError("teaching: docs/teaching.md has no '## A suggested order' section")
    lectures, seen = [], set()
    for line in section[1].split("\n## ", 1)[0].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].isdigit():
            continue
        stems = []
        for number in re.findall(r"\b(\d\d)\b", cells[1]):
            if number not in by_number:
                raise ValueError(f"teaching: lecture {cells[0]} names notebook {number}, which does not exist")
            stems.append(by_number[number])
        seen.update(stems)
        lectures.append((f"Lecture {cells[0]}", stems))
    if not lectures:
        raise ValueError("teaching: the '## A suggested order' section has no lecture rows")
    rest = [stem for number, stem in sorted(by_number.items()) if stem not in seen]
    return lectures + ([("More notebooks", rest)] if rest else [])


def collapse_solutions(notebook: nbformat.NotebookNode) -> int:
    """Put every cell tagged ``solution`` behind a toggle (in place): code cells get myst-nb's ``hide-cell``
    tag (source and outputs hidden), markdown cells are wrapped in ``<details>``. Returns the cells changed."""
    changed = 0
    for cell in notebook.cells:
        if SOLUTION_TAG not in cell.get("metadata", {}).get("tags", []):
            continue
        if cell.cell_type == "code":
            cell.metadata["tags"] = list(cell.metadata["tags"]) + ["hide-cell"]
            cell.metadata["mystnb"] = {**cell.metadata.get("mystnb", {}),
                                       "code_prompt_show": SHOW, "code_prompt_hide": HIDE}
        else:
            cell.source = (f'<details class="hide solution">\n<summary aria-label="Toggle hidden content">{SHOW}'
                           f"</summary>\n\n{cell.source}\n\n</details>")
        changed += 1
    return changed


def index_page(lectures: Sequence[tuple[str, Sequence[str]]]) -> str:
    """The site's root page: one toctree per lecture (notebooks), then the course pages."""
    parts = ["# medxai: explainable deep learning for medical imaging", "",
             "A teaching suite of Jupyter notebooks, rendered with their committed outputs (nothing is re-run "
             "to build this site). Each notebook reproduces a story from the literature on interpretable medical "
             "imaging at laptop scale and prints its scientific claims as checked `CLAIM` lines. Worked solutions "
             f"of the exercises are collapsed: click **{SHOW}** to read one. The lectures follow the order "
             "suggested in the [teaching guide](docs/teaching.md).", ""]
    for caption, stems in lectures:
        parts += ["```{toctree}", f":caption: {caption}", ":maxdepth: 1", ""]
        parts += [f"notebooks/{stem}" for stem in stems] + ["```", ""]
    parts += ["```{toctree}", ":caption: Course pages", ":maxdepth: 1", ""]
    parts += [page.removesuffix(".md") for page in PAGES] + ["```", ""]
    return "\n".join(parts)


def stage(root: Path, staging: Path) -> list[str]:
    """Copy the pages and notebooks of ``root`` into ``staging`` (same relative paths), collapse solutions and
    write ``index.md``; returns the notebook stems in navigation order."""
    notebooks = sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"root: no notebooks matching notebooks/NN_*.ipynb under {root}")
    for page in PAGES:
        source = root / page
        if not source.is_file():
            raise FileNotFoundError(f"root: the site page {page} is missing under {root}")
        (staging / page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, staging / page)
    (staging / "notebooks").mkdir(exist_ok=True)
    for path in notebooks:
        notebook = nbformat.read(path, as_version=4)
        collapse_solutions(notebook)
        nbformat.write(notebook, staging / "notebooks" / path.name)
    lectures = lecture_order((root / "docs" / "teaching.md").read_text(encoding="utf-8"),
                             [p.name for p in notebooks])
    (staging / "index.md").write_text(index_page(lectures), encoding="utf-8")
    return [stem for _, stems in lectures for stem in stems]


def build_site(out: Path, root: Path = ROOT) -> float:
    """Stage ``root``'s sources in a temporary folder, run ``sphinx-build -W`` and replace ``out`` with the
    HTML (no doctrees, no ``jupyter_execute/``). Returns the build time in seconds; raises
    ``RuntimeError`` with Sphinx's output when the build fails or warns."""
    started = time.perf_counter()
    out = Path(out).resolve()
    with tempfile.TemporaryDirectory(prefix="medxai-site-") as work:
        work = Path(work)
        staging, html = work / "src", work / "build" / "html"
        staging.mkdir()
        stage(Path(root), staging)
        command = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "-q", "-c", str(CONF_DIR),
                   "-d", str(work / "doctrees"), str(staging), str(html)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"sphinx-build failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
        (html / ".buildinfo").unlink(missing_ok=True)
        shutil.rmtree(html / "_sources", ignore_errors=True)       # empty: html_copy_source = False
        for template in (html / "_static").glob("*.html"):          # the themes' Jinja macros, not pages
            template.unlink()
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(html, out)
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "build" / "site"), help="output folder (replaced)")
    args = parser.parse_args(argv)
    try:
        seconds = build_site(Path(args.out))
    except (RuntimeError, FileNotFoundError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"site: {Path(args.out) / 'index.html'} ({seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
