"""The regression report of ``make run`` (``runs/latest/index.html``): per notebook, each recorded metric beside
its baseline, tolerance and direction (flagged when outside), its history across runs as a small inline SVG
sparkline (``runs/history.jsonl``, one JSON object per run), and the notebook's claim verdicts parsed from the
executed notebook. Self-contained HTML: no script, no stylesheet or font from anywhere else.
"""
from __future__ import annotations

import html
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

DIRECTIONS = ("higher", "lower", "both")


def outside_baseline(value: float, spec: dict[str, Any], where: str) -> bool:
    """Whether ``value`` lies outside its baseline ``spec`` (``{"value", "tolerance", "direction"}``):
    below ``value - tolerance`` for ``"higher"`` (higher is better), above ``value + tolerance`` for
    ``"lower"``, farther than the tolerance either way for ``"both"``. ``where`` names the metric in errors."""
    base, tol, direction = float(spec["value"]), float(spec.get("tolerance", 0.0)), spec.get("direction", "both")
    if direction not in DIRECTIONS:
        raise ValueError(f"baselines: {where} has direction {direction!r}; expected higher, lower or both")
    return value < base - tol if direction == "higher" else value > base + tol if direction == "lower" \
        else abs(value - base) > tol


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def metric_rows(result: dict[str, Any], baselines: dict[str, dict[str, Any]] | None) -> list[dict[str, Any]]:
    """One row per metric the notebook recorded or has a baseline for: ``{"metric", "value", "baseline",
    "tolerance", "direction", "state"}``, state ``"within"``, ``"outside"``, ``"not recorded"`` or
    ``"no baseline"`` (``baselines``: this notebook's metric -> spec; None when none are compared)."""
    stem, specs = Path(result["notebook"]).stem, baselines or {}
    rows = []
    for metric in list(result["metrics"]) + [m for m in specs if m not in result["metrics"]]:
        value, spec = result["metrics"].get(metric), specs.get(metric)
        row = {"metric": metric, "value": value, "baseline": None, "tolerance": None, "direction": None}
        if spec is None:
            row["state"] = "no baseline"
        else:
            row |= {"baseline": spec["value"], "tolerance": spec.get("tolerance", 0.0),
                    "direction": spec.get("direction", "both")}
            row["state"] = ("not recorded" if value is None else
                            "outside" if outside_baseline(float(value), spec, f"{stem}.{metric}") else "within")
        rows.append(row)
    return rows


def verdict_of(claim: dict[str, str]) -> str:
    """``holds`` / ``refuted`` / ``inconclusive`` for a claim, ``identity holds`` / ``identity broken`` for an
    identity, ``skipped`` for a skip."""
    if claim["kind"] == "CLAIM":
        return claim["verdict"]
    if claim["kind"] == "IDENTITY":
        return "identity holds" if claim["holds"] == "True" else "identity broken"
    return "skipped"


def verdict_counts(claims: Sequence[dict[str, str]]) -> dict[str, int]:
    """How many claims have each verdict (see :func:`verdict_of`), in a fixed order, zero counts left out."""
    order = ("holds", "refuted", "inconclusive", "identity holds", "identity broken", "skipped")
    verdicts = [verdict_of(c) for c in claims]
    return {v: verdicts.count(v) for v in order if v in verdicts}


# ---- history ---------------------------------------------------------------------------------------
def history_entry(results: Sequence[dict[str, Any]], params: str | None = None,
                  when: datetime | None = None) -> dict[str, Any]:
    """One line of ``history.jsonl``: the time (UTC), the ``--params`` file (None for the defaults) and per
    notebook its status, wall time, peak memory, metrics and claim verdict counts."""
    when = when or datetime.now(timezone.utc)
    return {"time": when.isoformat(timespec="seconds"), "params": params,
            "notebooks": {Path(r["notebook"]).stem: {"status": r["status"], "wall_s": r["wall_s"],
                                                    "peak_mb": r.get("peak_mb"), "metrics": r["metrics"],
                                                    "claims": verdict_counts(r.get("claims", []))}
                          for r in results}}


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """Every run recorded in ``path`` (oldest first); ``[]`` when the file does not exist. A line that is not
    a run record raises ``ValueError`` naming the file and line."""
    path = Path(path)
    if not path.exists():
        return []
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict) or not isinstance(entry["notebooks"], dict):
                raise TypeError("not a mapping with 'notebooks'")
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a run record ({exc}); move the file away to start a new "
                             "history") from exc
        entries.append(entry)
    return entries


def append_history(path: str | Path, entry: dict[str, Any]) -> None:
    """Append one run record to ``path`` (created with its folder when missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")


def metric_history(history: Sequence[dict[str, Any]], stem: str, metric: str,
                   params: str | None = None) -> list[float]:
    """The numeric values of one metric over the runs made with the same ``params`` (oldest first)."""
    values = []
    for entry in history:
        value = entry["notebooks"].get(stem, {}).get("metrics", {}).get(metric)
        if entry.get("params") == params and _numeric(value):
            values.append(float(value))
    return values


# ---- HTML ------------------------------------------------------------------------------------------
def sparkline(values: Sequence[float], spec: dict[str, Any] | None = None, width: int = 140, height: int = 30) -> str:
    """An inline SVG of ``values`` (oldest left): a polyline, the last value as a dot (red when outside
    ``spec``), and the accepted band of the baseline shaded. Empty string when there is no value."""
    if not values:
        return ""
    pad = 3.0
    band = None
    if spec is not None:
        base, tol, direction = float(spec["value"]), float(spec.get("tolerance", 0.0)), spec.get("direction", "both")
        band = (base - tol, math.inf if direction == "higher" else base + tol) if direction != "lower" \
            else (-math.inf, base + tol)
    finite = list(values) + ([b for b in band if math.isfinite(b)] if band else [])
    low, high = min(finite), max(finite)
    span = (high - low) or (abs(high) or 1.0)
    low, high = low - 0.05 * span, high + 0.05 * span

    def y(v: float) -> float:
        v = min(max(v, low), high)
        return round(height - pad - (v - low) / (high - low) * (height - 2 * pad), 2)

    def x(i: int) -> float:
        return round(pad + (i / (len(values) - 1) if len(values) > 1 else 1.0) * (width - 2 * pad), 2)

    parts = [f'<svg class="spark" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="history of {len(values)} run(s)">',
             "<title>" + html.escape(", ".join(f"{v:.4g}" for v in values)) + "</title>"]
    if band:
        top, bottom = y(band[1]), y(band[0])
        parts.append(f'<rect class="band" x="0" y="{top}" width="{width}" height="{round(bottom - top, 2)}" '
                     'fill="#dff0d8"/>')
    points = " ".join(f"{x(i)},{y(v)}" for i, v in enumerate(values))
    parts.append(f'<polyline points="{points}" fill="none" stroke="#336" stroke-width="1.5"/>')
    last_out = spec is not None and outside_baseline(values[-1], spec, "sparkline")
    parts.append(f'<circle cx="{x(len(values) - 1)}" cy="{y(values[-1])}" r="2.5" '
                 f'fill="{"#b00" if last_out else "#336"}"/></svg>')
    return "".join(parts)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return html.escape(f"{value:.4g}" if isinstance(value, float) else str(value))


def _claims_cell(claims: Sequence[dict[str, str]]) -> str:
    if not claims:
        return "-"
    counts = verdict_counts(claims)
    bad = {"inconclusive", "identity broken"}
    summary = ", ".join(f'<span class="{"bad" if v in bad else "v"}">{n} {html.escape(v)}</span>'
                        for v, n in counts.items())
    items = "".join(f'<li class="{"bad" if verdict_of(c) in bad else "v"}"><b>{html.escape(verdict_of(c))}</b>: '
                    f'{html.escape(c["sentence"])}</li>' for c in claims)
    return f'<details class="claims"><summary>{summary}</summary><ul>{items}</ul></details>'


def _metrics_table(result: dict[str, Any], baselines: dict[str, dict[str, Any]] | None,
                   history: Sequence[dict[str, Any]], params: str | None) -> str:
    stem = Path(result["notebook"]).stem
    rows = metric_rows(result, baselines)
    if not rows:
        return "<p>No metric recorded.</p>"
    body = []
    for row in rows:
        spec = None if row["baseline"] is None else {"value": row["baseline"], "tolerance": row["tolerance"],
                                                     "direction": row["direction"]}
        runs = metric_history(history, stem, row["metric"], params)
        css = {"outside": "bad", "not recorded": "bad", "within": "ok"}.get(row["state"], "")
        body.append(f'<tr class="{css}" data-metric="{html.escape(row["metric"])}"><td>{html.escape(row["metric"])}</td>'
                    f'<td class="value">{_cell(row["value"])}</td><td>{_cell(row["baseline"])}</td>'
                    f'<td>{_cell(row["tolerance"])}</td><td>{_cell(row["direction"])}</td>'
                    f'<td class="state">{html.escape(row["state"])}</td>'
                    f'<td>{sparkline(runs, spec)} <span class="runs">{len(runs)} run(s)</span></td></tr>')
    return ('<table class="metrics"><tr><th>metric</th><th>value</th><th>baseline</th><th>tolerance</th>'
            '<th>better</th><th>state</th><th>history</th></tr>' + "".join(body) + "</table>")


def write_index(results: Sequence[dict[str, Any]], out_dir: str | Path, regressions: Sequence[str] = (),
                baselines: dict[str, dict[str, dict[str, Any]]] | None = None,
                history: Sequence[dict[str, Any]] = (), params: str | None = None) -> Path:
    """``index.html`` in ``out_dir``: a summary row per notebook (link to its HTML export, status, wall time,
    peak memory, metrics outside their baseline, claim verdicts), then per notebook each metric beside its
    baseline (``baselines``: stem -> metric -> spec; None = not compared) with its history across the runs in
    ``history`` made with the same ``params``, then the regressions."""
    summary, sections = [], []
    for res in results:
        stem, name = Path(res["notebook"]).stem, html.escape(res["notebook"])
        link = f'<a href="{html.escape(res["html"])}">{name}</a>' if res.get("html") else name
        rows = metric_rows(res, None if baselines is None else baselines.get(stem, {}))
        flagged = [r["metric"] for r in rows if r["state"] in ("outside", "not recorded")]
        within = sum(r["state"] == "within" for r in rows)
        metrics = (f'<span class="bad">{len(flagged)} outside: {html.escape(", ".join(flagged))}</span>' if flagged
                   else f'<span class="ok">{within} within</span>' if within else "-")
        css = "ok" if res["status"] == "ok" else "bad"
        status = html.escape(res["status"] + (f" ({res['error']})" if res.get("error") else ""))
        summary.append(f'<tr id="row-{html.escape(stem)}"><td>{link}</td><td class="{css}">{status}</td>'
                       f'<td>{res["wall_s"]}</td><td>{res.get("peak_mb", "-")}</td><td>{metrics}</td>'
                       f'<td class="claims">{_claims_cell(res.get("claims", []))}</td></tr>')
        sections.append(f'<section id="{html.escape(stem)}"><h3>{name}</h3>'
                        f'{_metrics_table(res, None if baselines is None else baselines.get(stem, {}), history, params)}'
                        "</section>")
    compared = ("no baselines compared (parameter overrides change the numbers)" if baselines is None else
                "all recorded metrics within tolerance" if not regressions else
                "<ul>" + "".join(f'<li class="bad">{html.escape(r)}</li>' for r in regressions) + "</ul>")
    runs = sum(1 for entry in history if entry.get("params") == params)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>medxai run</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse;margin-bottom:1em}}
td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}} .ok{{color:#070}} .bad{{color:#b00}}
tr.bad td{{background:#fbeaea}} .runs{{color:#666;font-size:85%}} details.claims ul{{margin:0.3em 0;padding-left:1.2em}}
svg.spark{{vertical-align:middle}}</style></head>
<body><h1>medxai run summary</h1>
<table><tr><th>notebook</th><th>status</th><th>wall time (s)</th><th>peak memory (MB)</th><th>metrics vs baseline</th>
<th>claims</th></tr>
{"".join(summary)}
</table><h2>Baselines</h2><p>{compared}</p>
<h2>Metrics, baselines and history</h2><p>History: {runs} run(s){f" with --params {html.escape(params)}" if params else
" with the default parameters"}. The shaded band of each plot is the accepted range of the baseline; a red dot is
outside it.</p>
{"".join(sections)}
</body></html>
"""
    path = Path(out_dir) / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
