"""The regression runner behind ``make run``: execute every notebook with papermill, collect the
metrics each one publishes with :func:`medxai_lib.runtime.record`, the wall time and the kernel's peak
memory, compare with the baselines, export HTML and write ``summary.md``, ``summary.json`` and ``index.html``
(:mod:`medxai_lib.run_report`: each metric beside its baseline and its history, each notebook's claim verdicts);
every run is appended to ``history.jsonl`` beside the output folder (``runs/history.jsonl``).

    python -m medxai_lib.runner [--notebooks notebooks] [--out runs/latest] [--params p.yaml] [NAME ...]

``--params``: a YAML mapping; plain keys go to every notebook, a key naming a notebook (``06_koch_descriptors_gan:``)
holds overrides for that notebook only. Exit status 1 when any notebook fails or a metric regresses.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from medxai_lib.evaluate.claims import checked_results
from medxai_lib.run_report import (append_history, history_entry, metric_rows, read_history, verdict_counts, write_index)
from medxai_lib.runtime import PROGRESS_ENV, RECORD_FILE_ENV, read_records


@contextmanager
def peak_child_memory(interval_s: float = 0.2) -> Iterator[dict[str, float]]:
    """Poll the resident memory of this process's children (the notebook kernel and anything it starts)
    every ``interval_s``; the yielded dict's ``"peak_mb"`` holds the largest total seen."""
    import psutil

    seen = {"peak_mb": 0.0}
    stop = threading.Event()
    me = psutil.Process()

    def poll() -> None:
        while not stop.is_set():
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    continue
            seen["peak_mb"] = max(seen["peak_mb"], total / 2**20)
            stop.wait(interval_s)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()
        seen["peak_mb"] = round(seen["peak_mb"], 1)


def export_html(executed: Path) -> Path:
    """``NAME.ipynb`` -> ``NAME.html`` next to it (nbconvert's HTML exporter, outputs included)."""
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
    target = executed.with_suffix(".html")
    target.write_text(body, encoding="utf-8")
    return target


def run_notebook(notebook: Path, out_dir: Path, parameters: dict[str, Any] | None = None,
                 timeout_s: int = 1800) -> dict[str, Any]:
    """Execute one notebook into ``out_dir``; returns status, wall time, kernel peak memory (MB), metrics,
    error and the HTML export's file name."""
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    record_file = out_dir / f"{notebook.stem}.metrics.jsonl"
    record_file.unlink(missing_ok=True)
    env_before = {k: os.environ.get(k) for k in (RECORD_FILE_ENV, PROGRESS_ENV)}
    os.environ[RECORD_FILE_ENV] = str(record_file.resolve())
    os.environ[PROGRESS_ENV] = "0"
    started = time.perf_counter()
    status, error = "ok", ""
    memory: dict[str, float] = {"peak_mb": 0.0}
    try:
        with peak_child_memory() as memory:
            pm.execute_notebook(str(notebook), str(out_dir / notebook.name), parameters=parameters or {},
                                cwd=str(notebook.parent), progress_bar=False, kernel_name="python3",
                                execution_timeout=timeout_s, log_output=False)
    except Exception as exc:  # papermill wraps cell errors; anything else is a failure too
        status, error = "failed", f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
    finally:
        for key, value in env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    wall = round(time.perf_counter() - started, 1)
    report, claims = "", []
    if (out_dir / notebook.name).exists():      # papermill writes the partial notebook on failure too
        report = export_html(out_dir / notebook.name).name
        claims = checked_results(out_dir / notebook.name)
    return {"notebook": notebook.name, "status": status, "wall_s": wall, "peak_mb": memory["peak_mb"],
            "metrics": read_records(record_file), "error": error, "html": report, "claims": claims}


def compare_baselines(results: Sequence[dict[str, Any]], baselines: dict[str, dict[str, dict[str, Any]]]
                      ) -> list[str]:
    """Regressions of recorded metrics against ``baselines`` (notebook stem -> metric -> ``{"value",
    "tolerance", "direction"}``, direction ``"higher"`` (higher is better), ``"lower"`` or ``"both"``).
    Returns one message per regression, naming notebook and metric; notebooks that were not run are skipped."""
    problems = []
    for res in results:
        stem = Path(res["notebook"]).stem
        for row in metric_rows(res, baselines.get(stem, {})):
            if row["state"] == "not recorded":
                problems.append(f"{stem}: metric {row['metric']!r} was not recorded")
            elif row["state"] == "outside":
                problems.append(f"{stem}: {row['metric']} = {float(row['value']):.4g} regressed from baseline "
                                f"{float(row['baseline']):.4g} (tolerance {float(row['tolerance']):g}, "
                                f"{row['direction']} is better)")
    return problems


def _format_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_summary(results: Sequence[dict[str, Any]], out_dir: Path, regressions: Sequence[str] = (),
                  baselines: dict[str, dict[str, dict[str, Any]]] | None = None,
                  history: Sequence[dict[str, Any]] = (), params: str | None = None) -> Path:
    """``summary.md`` (a table per notebook, then any baseline regressions), ``summary.json`` and
    ``index.html`` (:func:`medxai_lib.run_report.write_index`: metrics beside baselines, history, claims)."""
    lines = ["# medxai run summary", "", "| notebook | status | wall time (s) | peak memory (MB) | metrics | claims |",
             "|---|---|---|---|---|---|"]
    for res in results:
        metrics = ", ".join(f"{k}={_format_value(v)}" for k, v in res["metrics"].items()) or "-"
        status = res["status"] + (f" ({res['error']})" if res["error"] else "")
        claims = ", ".join(f"{n} {v}" for v, n in verdict_counts(res.get("claims", [])).items()) or "-"
        lines.append(f"| {res['notebook']} | {status} | {res['wall_s']} | {res.get('peak_mb', '-')} | {metrics} "
                     f"| {claims} |")
    failed = [r["notebook"] for r in results if r["status"] != "ok"]
    lines += ["", f"{len(results) - len(failed)}/{len(results)} notebooks ran." +
              (f" Failed: {', '.join(failed)}" if failed else "")]
    lines += ["", "Baselines: " + ("all recorded metrics within tolerance." if not regressions else
                                   f"{len(regressions)} regression(s):")] + [f"- {r}" for r in regressions]
    (out_dir / "summary.json").write_text(json.dumps(list(results), indent=2))
    write_index(results, out_dir, regressions, baselines=baselines, history=history, params=params)
    path = out_dir / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _load_params(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    import yaml
    if not Path(path).is_file():
        raise SystemExit(f"--params: no such file {path!r}")
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        raise SystemExit(f"--params: {path} is not valid YAML ({str(exc).splitlines()[0]} ...)") from exc
    if not isinstance(data, dict):
        raise SystemExit(f"--params: {path} must hold a mapping of parameter names to values")
    return data


def parameters_for(notebook: Path, params: dict[str, Any]) -> dict[str, Any]:
    """The overrides for one notebook: every plain key, then the mapping under its stem (if any)."""
    common = {k: v for k, v in params.items() if not isinstance(v, dict)}
    specific = params.get(notebook.stem, {})
    return {**common, **(specific if isinstance(specific, dict) else {})}


_POSITIVE = ("n_", "max_")
_POSITIVE_SUFFIX = ("_size", "epochs", "steps", "_width", "width", "_batch", "batch_size", "crop")


def check_parameters(notebook: Path, overrides: dict[str, Any]) -> list[str]:
    """Problems with ``overrides`` for ``notebook`` (empty when fine), checked against its ``parameters``
    cell: every key must be a parameter there; a value must have its default's type (an int where the
    default is an int, a number where it is a float, ``True``/``False`` for a flag; a string only where the
    default is a string or ``None`` or the parameter's comment offers that string in quotes); counts, sizes,
    epochs and steps (names ``n_*``, ``max_*``, ``*_size``, ``*epochs``, ``*steps``, ``*width``, ``*batch``)
    must be positive and ``seed`` a non-negative int."""
    import ast
    import papermill
    declared = papermill.inspect_notebook(str(notebook))
    problems = []
    for key, value in overrides.items():
        if key not in declared:
            problems.append(f"{key!r} is not a parameter of {notebook.stem} (it has {sorted(declared)})")
            continue
        try:
            default = ast.literal_eval(declared[key]["default"])
        except (ValueError, SyntaxError):
            continue  # an expression default (e.g. a tuple of names): papermill passes the value through
        offered = isinstance(value, str) and (f'"{value}"' in declared[key]["help"] or f"'{value}'" in declared[key]["help"])
        if isinstance(default, bool) or isinstance(value, bool):
            ok = isinstance(default, bool) and isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) or offered
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) or offered
        elif isinstance(default, str) or default is None:
            ok = True
        else:
            ok = type(value) is type(default)
        if not ok:
            problems.append(f"{key}: expected a value like its default {declared[key]['default']} "
                            f"({type(default).__name__}), got {value!r}")
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if key == "seed" and value < 0:
                problems.append(f"seed: expected a non-negative int, got {value!r}")
            elif (key.startswith(_POSITIVE) or key.endswith(_POSITIVE_SUFFIX)) and not value > 0:
                problems.append(f"{key}: expected a positive value (a count, size or length), got {value!r}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook file names or stems to run (default: all)")
    parser.add_argument("--notebooks", default="notebooks", help="folder of numbered notebooks")
    parser.add_argument("--out", default="runs/latest", help="output folder")
    parser.add_argument("--params", default=None, help="YAML file of parameter overrides")
    parser.add_argument("--baselines", default="tests/baselines.json",
                        help="JSON of metric baselines with tolerances ('' to skip the comparison)")
    parser.add_argument("--history", default=None,
                        help="JSON-lines file every run is appended to (default: history.jsonl beside --out; '' for none)")
    args = parser.parse_args(argv)
    folder, out_dir = Path(args.notebooks), Path(args.out)
    history_file = (out_dir.parent / "history.jsonl") if args.history is None else \
        (Path(args.history) if args.history else None)
    try:                                        # a broken history fails before any notebook runs
        history = read_history(history_file) if history_file else []
    except ValueError as exc:
        parser.error(f"--history: {exc}")
    notebooks = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if args.names:
        wanted = {Path(n).stem for n in args.names}
        unknown = wanted - {nb.stem for nb in notebooks}
        if unknown:
            parser.error(f"unknown notebooks {sorted(unknown)}; available: {[nb.stem for nb in notebooks]}")
        notebooks = [nb for nb in notebooks if nb.stem in wanted]
    if not notebooks:
        parser.error(f"no notebooks matching NN_*.ipynb in {folder}")
    params = _load_params(args.params)
    sections = {k for k, v in params.items() if isinstance(v, dict)}
    if sections - {nb.stem for nb in sorted(folder.glob("[0-9][0-9]_*.ipynb"))}:
        parser.error(f"--params: sections {sorted(sections - {nb.stem for nb in notebooks})} name no notebook in {folder}")
    problems = [f"{nb.stem}: {p}" for nb in notebooks for p in check_parameters(nb, parameters_for(nb, params))]
    if problems:
        parser.error("--params: " + "; ".join(problems))
    results = []
    for nb in notebooks:
        print(f"[medxai] running {nb.name} ...", flush=True)
        res = run_notebook(nb, out_dir, parameters_for(nb, params))
        print(f"[medxai] {nb.name}: {res['status']} in {res['wall_s']} s, peak {res['peak_mb']} MB {res['error']}",
              flush=True)
        results.append(res)
    baselines = json.loads(Path(args.baselines).read_text()) if args.baselines and Path(args.baselines).exists() else {}
    regressions = compare_baselines(results, baselines) if not params else []  # overrides change the numbers
    entry = history_entry(results, params=args.params)
    if history_file:
        append_history(history_file, entry)
    summary = write_summary(results, out_dir, regressions, baselines=None if params else baselines,
                            history=[*history, entry], params=args.params)
    print(summary.read_text())
    return 0 if all(r["status"] == "ok" for r in results) and not regressions else 1


if __name__ == "__main__":
    sys.exit(main())
