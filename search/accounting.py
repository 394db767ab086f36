"""An experiment's energy bill: the joules its trials reported (pruned, failed and re-run epochs included) plus the
sealed test's retrain, per source, and their CO2e at the configured grid intensity (``energy.grid_gco2_per_kwh``).

A measurement (``nvml``, ``rapl``) and an estimate (``estimate``: CPU time × watts per core) are never added up
silently: the total says which sources it holds, and ``estimated`` is true as soon as one of them is an estimate.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

from trainers.energy import co2e_g

def energy_summary(trials: Mapping[str, Any], audit: Iterable[Mapping[str, Any]],
                   grid_gco2_per_kwh: float) -> dict[str, Any] | None:
    """The bill from :meth:`search.records.ExperimentRecords.energy_totals` (``trials``) and the test audit's
    retrains (``audit``: entries of ``test_audit.json``); ``None`` when nothing was measured (an experiment from
    before energy was recorded)."""
    by_source = dict(trials.get("by_source", {}))
    retrain = 0.0
    for entry in audit:
        joules, source = entry.get("retrain_energy_j"), entry.get("retrain_energy_source")
        if joules is not None and source and math.isfinite(joules):
            retrain += joules
            by_source[source] = by_source.get(source, 0.0) + joules
    unknown = int(trials.get("unknown_epochs", 0))
    if not by_source and not unknown:
        return None
    total = math.fsum(by_source.values())
    # "mixed": a trial restarted on a node with another source; it may hold estimated joules
    return {"energy_j": total, "trials_energy_j": float(trials.get("energy_j", 0.0)), "retrain_energy_j": retrain,
            "by_source": dict(sorted(by_source.items())), "estimated": bool({"estimate", "mixed"} & set(by_source)),
            "unknown_epochs": unknown, "co2e_g": co2e_g(total, grid_gco2_per_kwh),
            "grid_gco2_per_kwh": grid_gco2_per_kwh}


def describe(summary: Mapping[str, Any] | None) -> str:
    """One line for people: ``812.4 J (estimate) = 0.108 g CO2e at 480 g/kWh; sealed retrain 40.1 J``."""
    if summary is None:
        return "not recorded"
    parts = " + ".join(f"{j:,.1f} J {source}" for source, j in summary["by_source"].items())
    flag = " — an ESTIMATE from CPU time (no energy counter was readable)" if summary["estimated"] else ""
    retrain = f"; sealed retrain {summary['retrain_energy_j']:,.1f} J of it" if summary["retrain_energy_j"] else ""
    unknown = (f"; INCOMPLETE: {summary['unknown_epochs']} epochs could not be read and are not in it"
               if summary.get("unknown_epochs") else "")
    return (f"{summary['energy_j']:,.1f} J ({parts or 'nothing read'}) = {summary['co2e_g']:.4g} g CO2e at "
            f"{summary['grid_gco2_per_kwh']:g} g/kWh{retrain}{unknown}{flag}")


def parent_metrics(summary: Mapping[str, Any] | None) -> dict[str, float]:
    """The bill as the parent run's metrics."""
    if summary is None:
        return {}
    return {"energy_total_j": summary["energy_j"], "energy_trials_j": summary["trials_energy_j"],
            "energy_retrain_j": summary["retrain_energy_j"], "co2e_total_g": summary["co2e_g"],
            "energy_unknown_epochs": float(summary["unknown_epochs"]),
            **{f"energy_{source}_j": j for source, j in summary["by_source"].items()}}
