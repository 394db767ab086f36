"""``hypernas report NAME``: one self-contained, static HTML file about an experiment — it opens offline (no script,
no link, images embedded as data URIs).

Sections: what the experiment was and how it ended, the energy bill and total compute, the pictures
(:mod:`search.plots`, redrawn from the records), the trial table, the decision-log summary (how many trials each
rung stopped, and why others stopped), stragglers and faults, the sealed test's audit (or that the split is still
sealed), the resolved config and the environment. Secrets are masked as everywhere else.
"""

from __future__ import annotations

import base64
import html
import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping

from search import accounting
from search.events import EventLog
from search.redaction import redact, redact_text
from search.workdir import ExperimentFolder, existing_experiment

REPORT_FILE = "report.html"

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 12px; } th, td { border: 1px solid #ddd; padding: 3px 6px; }
th { background: #f3f3f3; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.COMPLETE td.state { color: #1a7f37; } tr.PRUNED td.state { color: #b35900; } tr.FAILED td.state { color: #c00; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; font-size: 12px; }
figure { display: inline-block; margin: 0 1em 1em 0; vertical-align: top; } img { max-width: 100%; }
figcaption { font-size: 12px; color: #555; } .sealed { color: #1a7f37; font-weight: bold; }
"""


def _e(value: Any) -> str:
    return html.escape("-" if value is None else str(value))


def _md(text: str) -> str:
    """The little Markdown the run descriptions use (``**bold**``, ```code```), escaped, as HTML."""
    escaped = html.escape(text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped))


def _num(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else _e(value)


def _table(headers: list[str], rows: Iterable[list[str]], classes: Iterable[str] | None = None) -> str:
    body = []
    for row, cls in zip(rows, classes or iter(lambda: "", None)):
        body.append(f"<tr class='{_e(cls)}'>" + "".join(row) + "</tr>")
    return ("<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in headers) + "</tr>" + "".join(body) + "</table>")


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    caption = path.stem.replace("_", " ")
    return (f"<figure><img alt='{_e(caption)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _decision_summary(rows: list[Mapping[str, Any]]) -> str:
    decisions = [r for r in rows if r.get("kind") == "decision"]
    at_rungs = Counter((r["rung"], r["decision"]) for r in decisions if r.get("rung"))
    stops = Counter(json.loads(r["detail"]).get("reason", "-") if r.get("detail") else "-"
                    for r in decisions if r.get("decision") == "STOP")
    rungs = sorted({rung for rung, _ in at_rungs})
    table = _table(["rung (epoch)", "promoted / continued", "stopped"],
                   ([f"<td class='num'>{rung}</td>", f"<td class='num'>{at_rungs[(rung, 'CONTINUE')]}</td>",
                     f"<td class='num'>{at_rungs[(rung, 'STOP')]}</td>"] for rung in rungs)) if rungs else \
        "<p>No rung decisions were recorded (no early stopping, or no trial reached a rung).</p>"
    reasons = "".join(f"<li>{_e(reason)}: {n}</li>" for reason, n in stops.most_common())
    asks = sum(r.get("kind") == "ask" for r in rows)
    return (f"<p>{asks} configurations asked of the sampler; {len(decisions)} scheduler decisions.</p>{table}"
            + (f"<p>Why trials were stopped:</p><ul>{reasons}</ul>" if reasons else ""))


def _faults(trial_rows: list[Mapping[str, Any]]) -> str:
    stragglers = [r for r in trial_rows if r.get("straggler")]
    attempts = [(r["number"], a) for r in trial_rows for a in json.loads(r["attempt_history"] or "[]")]
    parts = [f"<p>{len(stragglers)} straggler(s)"
             + (": " + ", ".join(f"trial {r['number']} ({r['straggler_ratio']:.1f}× its peers)" for r in stragglers)
                if stragglers else "") + ".</p>"]
    if attempts:
        parts.append(_table(["trial", "attempt", "state", "epochs run", "error (last line)"],
                            ([f"<td class='num'>{n}</td>", f"<td class='num'>{a['attempt']}</td>",
                              f"<td>{_e(a['state'])}</td>", f"<td class='num'>{a.get('epochs_run')}</td>",
                              f"<td>{_e(((a.get('error') or '').strip().splitlines() or [''])[-1])}</td>"]
                             for n, a in attempts)))
    else:
        parts.append("<p>No attempt failed: no stall, no lost node, no exception that was retried.</p>")
    return "".join(parts)


def _audit(audit: list[Mapping[str, Any]]) -> str:
    if not audit:
        return "<p class='sealed'>The test split is still sealed: no look has been recorded for this experiment.</p>"
    return _table(["opened at", "trial", "look", "validation", "test", "optimism gap", "selection"],
                  ([f"<td>{_e(a.get('opened_at_iso'))}</td>", f"<td class='num'>{a['trial']}</td>",
                    f"<td>{'repeat' if a.get('repeat') else 'forced' if a.get('forced') else 'first'}</td>",
                    f"<td>{_e(a.get('validation_metric'))} {_num(a.get('validation_value'))}</td>",
                    f"<td>{_e(a.get('test_metric'))} {_num((a.get('test_metrics') or {}).get(a.get('test_metric')))}</td>",
                    f"<td class='num'>{_num(a.get('optimism_gap'))}</td>",
                    f"<td>{_e((a.get('selection') or {}).get('description'))}</td>"] for a in audit))


def build_report(workdir: str | Path, name: str, out: str | Path | None = None) -> Path:
    """Write the report of experiment ``name`` (default: ``<folder>/report.html``) and return its path; the
    pictures are redrawn from the records first."""
    from search.experiment import describe_experiment, read_records
    from search.monitor import outcome_note
    from search.plots import PLOTS_DIR, experiment_plots

    folder: ExperimentFolder = existing_experiment(workdir, name)
    cfg = folder.load_config()
    state = folder.read_state()
    records = read_records(folder, cfg)
    events = EventLog.read(folder.path)
    paths, notes = experiment_plots(folder.path, cfg, records, events.rows, folder.study_file)
    pictures = [p for p in paths if p.suffix == ".png"]
    if records.objectives:
        from search._optuna.front import plot_front

        pictures += plot_front(records.trial_rows(redacted=True), records.objectives, folder.path / PLOTS_DIR,
                               title=name)
    audit = folder.read_audit()
    bill = accounting.energy_summary(records.energy_totals(), audit, cfg.energy.grid_gco2_per_kwh)
    trial_rows = records.trial_rows(redacted=True)
    cpus, gpus = cfg.resources.cpus, cfg.resources.gpus
    wall = sum(r["wall_time_s"] for r in trial_rows)
    compute = f"{wall * cpus:,.0f} CPU-seconds" + (f", {wall * gpus:,.0f} GPU-seconds" if gpus else "")
    names = [o.name for o in records.objective_list]
    trials_table = _table(
        ["trial", "state", "epochs", *names, "best", "energy J", "wall s", "node", "pareto", "params"],
        ([f"<td class='num'>{r['number']}</td>", f"<td class='state'>{_e(r['state'])}</td>",
          f"<td class='num'>{r['epochs_run']}/{r['epochs']}</td>",
          *(f"<td class='num'>{_num(r['objective_values'].get(n))}</td>" for n in names),
          f"<td class='num'>{_num(r['best_value'])}</td>", f"<td class='num'>{_num(r['energy_j'], 1)}</td>",
          f"<td class='num'>{r['wall_time_s']:.1f}</td>", f"<td>{_e(r['node'])}</td>",
          f"<td>{'★' if r['pareto'] and records.objectives else ''}</td>", f"<td><code>{_e(r['params'])}</code></td>"]
         for r in trial_rows), (r["state"] for r in trial_rows))
    status = state.get("status", "unknown")
    sections = [
        f"<h1>hypernas report: {_e(name)}</h1>",
        f"<p>{_md(describe_experiment(cfg))}</p>",
        f"<p>{_md(outcome_note(records, status, {}, {}))}</p>",
        f"<p>Generated {_e(time.strftime('%Y-%m-%d %H:%M:%S %Z'))}; MLflow experiment {_e(state.get('mlflow_experiment'))}, "
        f"parent run {_e(state.get('parent_run_id'))}.</p>",
        "<h2>Compute and energy</h2>",
        f"<p>Total compute: {_e(compute)} (Σ trial wall time × resources per trial).</p>",
        f"<p>Energy: {_e(accounting.describe(bill))}</p>",
        "<h2>Pictures</h2>", "".join(_image(p) for p in pictures) or "<p>No picture could be drawn.</p>",
        *(["<ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>"] if notes else []),
        f"<h2>Trials ({len(trial_rows)})</h2>", trials_table,
        "<h2>Decision log</h2>", _decision_summary(events.rows),
        "<h2>Stragglers and faults</h2>", _faults(trial_rows),
        "<h2>Sealed test</h2>", _audit(audit),
        "<h2>Configuration</h2>", f"<pre>{_e(redact_text(cfg.to_yaml()))}</pre>",
        "<h2>Environment</h2>", f"<pre>{_e(json.dumps(redact(state.get('environment') or {}), indent=2))}</pre>",
    ]
    document = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
                f"<title>hypernas report: {_e(name)}</title><style>{_STYLE}</style></head><body>"
                + "\n".join(sections) + "</body></html>")
    target = Path(out) if out is not None else folder.path / REPORT_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(document, encoding="utf-8")
    tmp.replace(target)
    return target
