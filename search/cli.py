"""``hypernas`` command line. Exit codes: 0 ok, 1 failure while running, 2 bad input (nothing created),
3 refused (the sealed test split was already opened), 128 + the signal's number when interrupted (130 Ctrl-C,
143 SIGTERM)."""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

from search.config import ConfigError, load_config, validate_name
from search.redaction import redact, secret_overrides_from_env
from search.workdir import DEFAULT_WORKDIR, existing_experiment, hold_experiment

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_REFUSED = 0, 1, 2, 3


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


# --- verbs -----------------------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from search.experiment import run_experiment

    # `hypernas submit` passes --set items that hold secrets through the job's runtime env, not its entrypoint
    overrides = [*args.set, *secret_overrides_from_env()]
    result = run_experiment(args.config, workdir=args.workdir, name=args.name, seed=args.seed, overrides=overrides,
                            overwrite=args.overwrite, address=args.address)
    return EXIT_OK if result.counts.get("COMPLETE", 0) or result.counts.get("PRUNED", 0) else EXIT_FAILED


def cmd_resume(args: argparse.Namespace) -> int:
    from search.experiment import resume_experiment

    result = resume_experiment(args.workdir, args.name, address=args.address)
    return EXIT_OK if result.counts.get("COMPLETE", 0) or result.counts.get("PRUNED", 0) else EXIT_FAILED


def cmd_sync(args: argparse.Namespace) -> int:
    from search.experiment import sync_tracking

    folder = existing_experiment(args.workdir, args.name)
    if not folder.read_state().get("tracking_uri"):
        raise ConfigError("name", f"experiment {args.name!r} was simulated with --no-tracking: it has no MLflow "
                                  "store to write to (simulate it again without --no-tracking)")
    with hold_experiment(folder.workdir, folder.name):  # not while a driver writes it
        counts = sync_tracking(folder)
    print(f"MLflow holds everything {args.name!r} recorded ({redact(folder.read_state()['tracking_uri'])}): "
          f"{counts['runs_created']} runs created, {counts['metrics_added']} metric values added, "
          f"{counts['runs_closed']} runs closed")
    return EXIT_OK


def cmd_simulate(args: argparse.Namespace) -> int:
    from search.simulate import simulate_experiment

    result = simulate_experiment(args.config, curves=args.curves, workers=args.workers, stragglers=args.straggler,
                                 lookup=args.lookup, sampler_history=args.sampler_history,
                                 tracking=not args.no_tracking, plots=not args.no_plots, workdir=args.workdir,
                                 name=args.name, seed=args.seed,
                                 overrides=args.set, overwrite=args.overwrite)
    return EXIT_OK if result.counts.get("COMPLETE", 0) or result.counts.get("PRUNED", 0) else EXIT_FAILED


def cmd_submit(args: argparse.Namespace) -> int:
    load_config(args.config, overrides=args.set, name=args.name, seed=args.seed)  # bad input fails here, not there
    working_dir = Path(args.working_dir).resolve()
    config = Path(args.config).resolve()
    if not config.is_relative_to(working_dir):
        raise ConfigError("config", f"{args.config} must be inside the working dir {working_dir} (it travels with it)")
    run_args = [f"--set={item}" for item in args.set]
    run_args += [f"--name={args.name}"] if args.name else []
    run_args += [f"--seed={args.seed}"] if args.seed is not None else []
    run_args += [f"--workdir={args.workdir}"] if args.workdir != DEFAULT_WORKDIR else []
    from search._tune import configure

    configure()  # before ray is imported: the job client authenticates as Ray's environment says
    from search._tune._jobs import submit

    return submit(args.address, config.relative_to(working_dir), working_dir, run_args, wait=args.wait,
                  stream=sys.stdout)


def cmd_validate(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, overrides=args.set, name=args.name, seed=args.seed)
    from spaces import dump_yaml

    print(redact(f"# {args.config}: valid. Resolved configuration (secrets masked):"))
    print(dump_yaml(redact(cfg.to_dict())), end="")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from search.records import ExperimentRecords
    from search.redaction import redact_text

    folder = existing_experiment(args.workdir, args.name)
    state = folder.read_state()
    settings = folder.record_settings()  # not the whole config: status works when the data file has moved
    # the journal, not trials.parquet: it is current for a running experiment and complete after a crash
    records = ExperimentRecords.read(folder.path, settings.metric.name, settings.metric.mode, settings.constraints,
                                     settings.straggler_factor, objectives=settings.objectives)
    rows = records.trial_rows(redacted=True)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    best = records.best()
    from search.accounting import describe, energy_summary

    bill = energy_summary(records.energy_totals(), folder.read_audit(), settings.energy.grid_gco2_per_kwh)
    info = {
        "experiment": state["name"], "status": state.get("status"), "trials_planned": state.get("trials_planned"),
        "trials_seen": len(rows), "counts": counts, "best_trial": best.number if best else None,
        **({"pareto_front": [row["number"] for row in rows if row["pareto"]]} if records.objectives else {}),
        "energy": bill if args.json else describe(bill),
        "tracking_uri": redact_text(state.get("tracking_uri") or ""), "mlflow_experiment": state.get("mlflow_experiment"),
        "parent_run_id": state.get("parent_run_id"), "folder": str(folder.path),
    }
    simulated = state.get("simulated")
    if simulated:  # hypernas simulate: the clock of the table's curves, not of any training
        info = {"simulated": simulated if args.json else
                f"{simulated['makespan_s']:.1f} s of simulated time on {simulated['workers']} workers "
                f"({simulated['wall_s']:.1f} s wall), curves {simulated['curves']}"} | info
        info["energy"] = None if args.json else "none (simulated: nothing trained)"
    if args.json:
        _print_json(info)
        return EXIT_OK
    for key, value in info.items():
        print(f"{key:<18} {value}")
    if rows:
        clock = "sim_s" if simulated else "time_s"
        print(f"\n{'trial':>5} {'state':<9} {'epochs':>6} {'last':>8} {'best':>8} {clock:>7}  node")
        for row in rows:
            fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
            took = (row["sim_ended_s"] or 0.0) - (row["sim_started_s"] or 0.0) if simulated else row["wall_time_s"]
            print(f"{row['number']:>5} {row['state']:<9} {row['epochs_run']:>3}/{row['epochs']:<2} "
                  f"{fmt(row['last_value']):>8} {fmt(row['best_value']):>8} {took:>7.1f}  {row['node'] or '-'}")
    return EXIT_OK


def cmd_best(args: argparse.Namespace) -> int:
    from search.redaction import redact
    from search.selection import best_trial, pareto_report

    folder = existing_experiment(args.workdir, args.name)
    if len(folder.record_settings().objectives) > 1:
        report = pareto_report(args.workdir, args.name, allow_interrupted=args.allow_interrupted)
        report["front"] = [{**point, "params": redact(point["params"])} for point in report["front"]]
        report["selected"] = {**report["selected"], "params": redact(report["selected"]["params"])}
        if args.json:
            _print_json(report)
        else:
            print(_front_table(report, simulated=bool(folder.read_state().get("simulated"))))
        return EXIT_OK
    winner = best_trial(args.workdir, args.name, allow_interrupted=args.allow_interrupted)
    _print_json({**winner, "params": redact(winner["params"])})
    return EXIT_OK


def _front_table(report: dict[str, Any], simulated: bool = False) -> str:
    """The Pareto front as a table: one row per trial, one column per objective, ``*`` on the selected point.
    ``simulated``: a simulation's front (nothing was trained: there is no model to test)."""
    names = [o["name"] for o in report["objectives"]]
    widths = [max(len(n), 10) for n in names]
    fmt = lambda v: "-" if v is None else f"{v:.6g}"  # noqa: E731
    directions = ", ".join(f"{o['name']} {o['mode']}" for o in report["objectives"])
    lines = [f"Pareto front of {report['experiment']}: {len(report['front'])} trials ({directions})",
             "   " + f"{'trial':>5}  " + "  ".join(f"{n:>{w}}" for n, w in zip(names, widths)) + "  params"]
    for point in report["front"]:
        values = "  ".join(f"{fmt(point['values'].get(n)):>{w}}" for n, w in zip(names, widths))
        lines.append(f"{'*' if point['selected'] else ' ':>2} {point['trial']:>5}  {values}  "
                     f"{json.dumps(point['params'], sort_keys=True)}")
    selected = report["selected"]
    after = ("simulated over recorded curves: train it for real to test it" if simulated else
             f"`hypernas test {report['experiment']}` scores it on the sealed test split")
    lines.append(f"\nselected (*): trial {selected['trial']} — {report['rule_description']} (validation values; "
                 f"{after})")
    return "\n".join(lines)


def cmd_report(args: argparse.Namespace) -> int:
    from search import _mlflow
    from search.plots import PLOTS_DIR
    from search.redaction import redact_text
    from search.report import build_report

    path = build_report(args.workdir, args.name, args.out)
    print(f"report: {path.resolve()}")
    folder = existing_experiment(args.workdir, args.name)
    state = folder.read_state()
    if not state.get("tracking_uri"):
        return EXIT_OK  # simulated with --no-tracking: no MLflow run to attach it to
    try:  # the refreshed pictures and the report on the parent run too
        plots = sorted((folder.path / PLOTS_DIR).glob("*.*"))
        _mlflow.upload_artifacts(state["tracking_uri"], state["parent_run_id"], plots, PLOTS_DIR)
        _mlflow.upload_artifacts(state["tracking_uri"], state["parent_run_id"], [path])
    except Exception as err:  # noqa: BLE001 - the file is written; MLflow may be away
        print(f"note: MLflow not updated ({type(err).__name__}: {redact_text(str(err))[:200]})", file=sys.stderr)
    return EXIT_OK


def cmd_test(args: argparse.Namespace) -> int:
    from search.redaction import redact
    from search.selection import run_sealed_test

    entry = run_sealed_test(args.workdir, args.name, force=args.force, allow_interrupted=args.allow_interrupted)
    for warning in entry["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    _print_json({**entry, "params": redact(entry["params"])})
    metric, test_name = entry["validation_metric"], entry["test_metric"]
    if entry["optimism_gap"] is not None:
        how = ("  (REPEAT: the identical model was scored before, by experiment "
               f"{entry['repeat_of']['experiment']!r} at {entry['repeat_of']['opened_at_iso']}; nothing was opened)"
               if entry["repeat"] else f"  (FORCED look #{entry['open']} at this split)" if entry["forced"] else "")
        print(f"\nwinner: trial {entry['trial']}  {metric}={entry['validation_value']:.4f}  "
              f"{test_name}={entry['test_metrics'][test_name]:.4f}  optimism gap={entry['optimism_gap']:+.4f}{how}")
    return EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    from search.redaction import redact
    from search.sealing import TestLedger

    looks = TestLedger(args.workdir).looks()
    if args.name is not None:
        looks = [look for look in looks
                 if look.experiment == args.name or any(r["experiment"] == args.name for r in look.repeats)]
    rows = [{
        "id": look.id, "split_sha256": look.split, "experiment": look.experiment, "trial": look.trial,
        "model": look.model, "params": redact(look.record.get("params", {})), "opened_at": look.at,
        "forced": look.forced, "status": look.status, "split_seed": look.record.get("split_seed"),
        "test_metrics": (look.result or {}).get("test_metrics"),
        "repeats": [{"experiment": r["experiment"], "trial": r["trial"], "at": r["at"]} for r in look.repeats],
    } for look in looks]
    if args.json:
        _print_json(rows)
        return EXIT_OK
    if not rows:
        print(f"no test split was opened in {args.workdir}" + (f" by {args.name!r}" if args.name else ""))
        return EXIT_OK
    print(f"{'opened at':<25} {'split':<12} {'experiment':<20} {'trial':>5} {'look':<10} {'status':<10}  test metrics")
    for row in rows:
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in (row["test_metrics"] or {}).items()) or "-"
        print(f"{row['opened_at']:<25} {row['split_sha256'][:12]:<12} {row['experiment'][:20]:<20} "
              f"{row['trial']:>5} {'forced' if row['forced'] else 'first':<10} {row['status']:<10}  {metrics}")
        for repeat in row["repeats"]:
            print(f"{repeat['at']:<25} {'':<12} {repeat['experiment'][:20]:<20} {repeat['trial']:>5} "
                  f"{'repeat':<10} {'answered':<10}  (from the look above; nothing opened)")
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    from search.replay import default_uri, replay_run, replay_trial

    if args.trial is not None:  # from the experiment's journal
        print(f"replaying trial {args.trial} of {args.target} from its journal", flush=True)
        result = replay_trial(args.workdir, args.target, args.trial)
    else:
        uri, run_id = default_uri(args.workdir, args.tracking_uri), args.target
        print(f"replaying MLflow run {run_id} ({redact(uri)})", flush=True)
        result = replay_run(uri, run_id)
    for key, (recorded, now) in result.environment_changes.items():
        print(f"warning: environment differs: {key}: recorded {recorded!r}, now {now!r}", file=sys.stderr)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if result.identical:
        print(f"identical: trial {result.trial}, {result.epochs} epochs, {result.compared} recorded values "
              "match bit for bit")
        return EXIT_OK
    print(f"DIFFERENT: trial {result.trial}, {len(result.differences)} of {result.compared} recorded values differ")
    print(result.table())
    return EXIT_FAILED


def cmd_export(args: argparse.Namespace) -> int:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from search.records import CURVES_FILE, TRIALS_FILE

    folder = existing_experiment(args.workdir, args.name)
    source = folder.path / (TRIALS_FILE if args.table == "trials" else CURVES_FILE)
    if not source.is_file():
        raise ConfigError("name", f"experiment {args.name!r} has no {source.name} yet")
    out = Path(args.out)
    if out.suffix not in (".parquet", ".csv"):
        raise ConfigError("--out", f"must end in .parquet or .csv (got {out.name!r})")
    if not out.parent.is_dir():
        raise ConfigError("--out", f"folder {out.parent} does not exist")
    table = pq.read_table(source)
    if out.suffix == ".csv":
        pacsv.write_csv(table, out)
    else:
        pq.write_table(table, out)
    print(f"wrote {table.num_rows} rows of {args.table} to {out}")
    return EXIT_OK


def cmd_ui(args: argparse.Namespace) -> int:
    if args.name is not None:
        validate_name(args.name, "name")  # before anything else: a bad name is refused as every verb refuses it
    workdir = Path(args.workdir)
    store = workdir / "mlflow.db"
    if not store.is_file():
        raise ConfigError("--workdir", f"no MLflow store at {store}; run an experiment first (hypernas run ...)")
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{store.resolve()}",
        "--default-artifact-root", (workdir / "mlartifacts").resolve().as_uri(),
        "--host", args.host, "--port", str(args.port), "--workers", "1",
    ]
    experiment = None
    if args.name is not None:  # open straight on that experiment's runs
        state = existing_experiment(args.workdir, args.name).read_state()
        if not state.get("tracking_uri"):
            raise ConfigError("name", f"experiment {args.name!r} was simulated with --no-tracking: nothing of it is "
                                      "in MLflow")
        if state.get("tracking_uri") != f"sqlite:///{store.resolve()}":
            raise ConfigError("name", f"experiment {args.name!r} tracked to {state.get('tracking_uri')!r}, not this "
                                      f"workdir's store {store}; open that tracking server's UI instead")
        experiment = state.get("mlflow_experiment_id")
    from search._mlflow import ui_url  # (imports MLflow's client: only this verb pays for it)

    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    print(f"MLflow UI on {ui_url(f'http://{args.host}:{args.port}', experiment)}  (store {store}); Ctrl-C stops it",
          flush=True)
    return serve(command, env)


class _Stop(Exception):
    """Raised by ``serve``'s signal handler to end its wait for the server."""


def serve(command: Sequence[str], env: dict[str, str], grace_s: float = 10.0) -> int:
    """Run a server until it exits, or until SIGINT/SIGTERM: then end it with everything it started.

    The server runs in its own process group (it may start workers of its own, as `mlflow server` does), so
    ending it means ending the group: SIGTERM, then SIGKILL for whatever is left after ``grace_s`` (or at a
    second signal). Returns the server's exit code, or 128 + the signal's number.
    """
    received: list[int] = []
    waiting = False  # only a signal during the wait ends it; one during the clean-up just hurries it

    def on_signal(signum: int, frame: Any) -> None:
        received.append(signum)
        if len(received) == 1 and waiting:
            raise _Stop  # ends server.wait(); before the server exists, the check after Popen sees it

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    server = None
    try:
        server = subprocess.Popen(list(command), env=env, start_new_session=True)
        if not received:
            waiting = True
            try:
                return server.wait()
            finally:
                waiting = False
    except _Stop:
        pass
    finally:
        if server is not None:
            _end_group(server, grace_s, hurry=lambda: len(received) > 1)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 + received[0]


def _end_group(leader: subprocess.Popen, grace_s: float, hurry: Callable[[], bool]) -> None:
    """SIGTERM ``leader``'s process group, wait up to ``grace_s`` for it to empty, then SIGKILL what is left."""
    try:
        os.killpg(leader.pid, signal.SIGTERM)
    except ProcessLookupError:  # nothing of the group is left
        leader.wait()
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and not hurry():
        leader.poll()  # reap the leader: a zombie leader would keep the group "alive"
        try:
            os.killpg(leader.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        try:
            os.killpg(leader.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    leader.wait()


# --- parser ----------------------------------------------------------------------------------------------------


def _add_workdir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", default=DEFAULT_WORKDIR,
                        help=f"folder holding experiments and the MLflow store (default: ./{DEFAULT_WORKDIR})")


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiment YAML file")
    parser.add_argument("--name", help="experiment name (default: the YAML's name, else the file name)")
    parser.add_argument("--seed", type=int, help="experiment seed (overrides the YAML)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, e.g. --set budget.trials=8 --set space.lr.high=0.1")


def _registry_listing() -> str:
    """The searcher and scheduler types a config can name, with their settings (from :mod:`search.registry`)."""
    from search.registry import listing

    return listing()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hypernas",
        description="Distributed hyperparameter and architecture search on Ray, tracked in MLflow, "
                    "with a sealed test split.",
        epilog="Exit codes: 0 ok, 1 failure, 2 bad input (nothing created), 3 refused (test split already opened), "
               "130/143 interrupted (Ctrl-C/SIGTERM; `hypernas resume NAME` continues a run).",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, handler: Callable[[argparse.Namespace], int], help_text: str,
             epilog: str | None = None) -> argparse.ArgumentParser:
        formatter = argparse.RawDescriptionHelpFormatter if epilog else argparse.HelpFormatter  # listing kept as is
        sub = verbs.add_parser(name, help=help_text, description=help_text, epilog=epilog, formatter_class=formatter)
        sub.set_defaults(handler=handler)
        _add_workdir(sub)
        return sub

    types = _registry_listing()
    run = verb("run", cmd_run, "validate CONFIG and run the experiment (local Ray unless --address/RAY_ADDRESS)",
               types)
    _add_config_options(run)
    run.add_argument("--overwrite", action="store_true", help="replace an existing experiment of the same name")
    run.add_argument("--address", help="Ray cluster address to join (default: RAY_ADDRESS, else a local Ray)")

    simulate = verb("simulate", cmd_simulate,
                    "run CONFIG's searcher and scheduler over recorded learning curves on a simulated clock with N "
                    "workers: no training, no Ray cluster; the result is an ordinary experiment (status, best, "
                    "report, ui)", types)
    _add_config_options(simulate)
    simulate.add_argument("--curves", required=True, metavar="TABLE",
                          help="learning curves: a Parquet table (one row per configuration and epoch: parameter "
                               "columns, epoch, metrics, epoch_time_s) or a finished experiment's folder")
    simulate.add_argument("--workers", required=True, type=int, metavar="N", help="simulated workers (trials at once)")
    simulate.add_argument("--straggler", action="append", default=[], metavar="SPEC",
                          help="inject stragglers (repeatable): slow:FRACTION:FACTOR (trials FACTOR times slower), "
                               "node:FRACTION:FACTOR (workers), hang:FRACTION[:EPOCH] (killed by the stall "
                               "watchdog, retried), lost:FRACTION@SECONDS (workers lost then; trials retried)")
    simulate.add_argument("--lookup", choices=("exact", "nearest"), default="exact",
                          help="a configuration missing from the table is an error (exact), or replays the nearest "
                               "one (nearest)")
    simulate.add_argument("--sampler-history", type=int, metavar="N",
                          help="show the sampler only the latest N..2N finished trials (bounds TPE's per-ask cost "
                               "on long simulations; default: all)")
    simulate.add_argument("--no-tracking", action="store_true", help="write nothing to MLflow")
    simulate.add_argument("--no-plots", action="store_true",
                          help="draw no pictures (hypernas report draws them later)")
    simulate.add_argument("--overwrite", action="store_true", help="replace an existing experiment of the same name")

    submit = verb("submit", cmd_submit, "run CONFIG on a Ray cluster as a Ray job (ray job submit, with the working "
                                        "dir and runtime env set up); --workdir is a path on the cluster")
    _add_config_options(submit)
    submit.add_argument("--address", required=True, help="the cluster's job server, e.g. http://127.0.0.1:8265")
    submit.add_argument("--wait", action="store_true", help="stream the job's logs; exit with its result")
    submit.add_argument("--working-dir", default=".", help="folder shipped with the job (default: the current one)")

    resume = verb("resume", cmd_resume, "finish experiment NAME after its driver died or was interrupted (Ctrl-C, "
                                        "SIGTERM): finished trials stay, running and interrupted ones continue "
                                        "from their checkpoints")
    resume.add_argument("name")
    resume.add_argument("--address", help="Ray cluster address to join (default: RAY_ADDRESS, else a local Ray)")

    sync = verb("sync", cmd_sync, "write to MLflow whatever experiment NAME recorded that MLflow is missing "
                                  "(after a tracking outage)")
    sync.add_argument("name")

    validate = verb("validate", cmd_validate, "check CONFIG and print the resolved configuration; creates nothing",
                    types)
    _add_config_options(validate)

    status = verb("status", cmd_status, "state of experiment NAME: trial counts, best so far, where results are")
    status.add_argument("name")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    best = verb("best", cmd_best, "the winner of NAME chosen on the validation metric (JSON); with several objectives "
                                  "the Pareto front as a table and the point the config's select: rule picks")
    best.add_argument("name")
    best.add_argument("--json", action="store_true", help="print JSON (the single-objective output always is)")
    best.add_argument("--allow-interrupted", action="store_true",
                      help="the best trial of an interrupted experiment so far (its budget was not spent)")

    report = verb("report", cmd_report, "one self-contained HTML file about NAME (plots, trials, decisions, faults, "
                                        "test audit, compute, energy); opens offline")
    report.add_argument("name")
    report.add_argument("--out", help="where to write it (default: the experiment folder's report.html)")

    test = verb("test", cmd_test, "retrain NAME's winner on train+validation and score the sealed test split, once")
    test.add_argument("name")
    test.add_argument("--force", action="store_true",
                      help="open a test split already opened for another model (recorded as forced)")
    test.add_argument("--allow-interrupted", action="store_true",
                      help="test the best trial of an interrupted experiment (its budget was not spent)")

    audit = verb("audit", cmd_audit, "the workdir's test-split ledger: every look at a sealed test split, forced "
                                     "looks and repeats included (optionally only experiment NAME's)")
    audit.add_argument("name", nargs="?")
    audit.add_argument("--json", action="store_true", help="machine-readable output")

    export = verb("export", cmd_export, "write NAME's trials (or curves) table to a .parquet or .csv file")
    export.add_argument("name")
    export.add_argument("--out", required=True, help="output file (.parquet or .csv)")
    export.add_argument("--table", choices=("trials", "curves"), default="trials")

    replay = verb("replay", cmd_replay, "re-run one trial from what was recorded (NAME --trial N: the experiment's "
                                        "journal; a run id: MLflow); exit 0 if its curve is "
                                        "identical bit for bit, 1 with a per-epoch diff table otherwise")
    replay.add_argument("target", help="a trial's MLflow run id, or an experiment NAME with --trial")
    replay.add_argument("--trial", type=int, help="trial number within experiment NAME")
    replay.add_argument("--tracking-uri", help="MLflow URI for a run id (default: MLFLOW_TRACKING_URI, else the "
                                               "workdir's store)")

    ui = verb("ui", cmd_ui, "serve the MLflow UI over the workdir's store on 127.0.0.1 (NAME: print the address "
                            "that opens on that experiment's runs)")
    ui.add_argument("name", nargs="?", help="an experiment of the workdir")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; expose with care)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        if not _reader_gone(sys.stdout):  # a broken connection of our own (a server's socket): an error
            sys.stderr.write(redact(traceback.format_exc()))
            return EXIT_FAILED
        # `hypernas ... | head`: the reader has all it wanted. Stop quietly, as other command-line tools do, with
        # the status a shell gives a process SIGPIPE ends; stdout goes nowhere so Python's flush at exit is quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


def _reader_gone(stream: Any) -> bool:
    """``stream`` is a pipe whose reading end is closed."""
    try:
        poller = select.poll()
        poller.register(stream.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # not a real file (a test's StringIO), or closed
        return False


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    # As with `python -m`: modules in the current folder are importable (a config's `trainer: mypkg.mod:train`).
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    from search.sealing import SelectionError, TestSetAlreadyOpened

    try:
        # Every verb's NAME (and --name) obeys the config's name rule before anything is built from it.
        if getattr(args, "name", None) is not None:
            validate_name(args.name)
        if args.verb == "replay" and args.trial is not None:
            validate_name(args.target)
        return args.handler(args)
    except ConfigError as err:
        print(f"hypernas: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TestSetAlreadyOpened as err:
        print(f"hypernas: refused: {redact(str(err))}", file=sys.stderr)
        return EXIT_REFUSED
    except SelectionError as err:
        print(f"hypernas: error: {redact(str(err))}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as err:  # search.interruption.Interrupted says which signal and how to resume
        print(f"hypernas: {str(err) or 'interrupted'}", file=sys.stderr)
        return getattr(err, "exit_code", 128 + signal.SIGINT)
    except BrokenPipeError:
        raise  # main decides: the reader of stdout went away, or a connection of ours broke
    except Exception:  # noqa: BLE001 - last resort: show what broke (secrets masked), exit non-zero
        sys.stderr.write(redact(traceback.format_exc()))
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
