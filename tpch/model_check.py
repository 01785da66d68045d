"""The scale model (tpch/model.py) next to measurements: `flocksql tpch model --measured RESULTS.json`.

A measurement is a `flocksql tpch bench` results file: per query and FlockSQL rank count, the median
of the timed runs and the slowest rank's compute/communication split (engine/batch.py). The model is
checked on what both have: the same queries, rank counts and scale factor. Its useful claim is the
shape (how time and the communication share move with the rank count), so the table shows the
speed-ups beside the seconds, and how many queries the model put within 2× of their measured time.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from statistics import median

from tpch.model import human_bytes

# A query predicted within this factor of its measured time counts as "near" in the table.
NEAR_FACTOR = 2.0


@dataclass(frozen=True)
class Measured:
    query: str  # model naming: q1 … q22
    nranks: int
    sf: float
    total_s: float
    compute_s: float
    comm_s: float
    moved_bytes: float  # between ranks, all ranks together (nan where the file does not say)


def _median_or_nan(values: list) -> float:
    return median(values) if values else math.nan


def read_measured(path: str | Path) -> list[Measured]:
    """The FlockSQL runs of a bench results file that answered right (status ok)."""
    results = json.loads(Path(path).read_text())
    if results.get("kind") != "tpch":
        raise ValueError(f"{path}: not the results of `flocksql tpch bench`")
    meta = results["meta"]
    warmup, sf = meta.get("warmup", 1), meta.get("scale_factor")
    if sf is None:
        raise ValueError(f"{path}: the results do not say their scale factor")
    out = []
    for run in results["runs"]:
        if run["engine"] != "flocksql" or not run.get("ranks"):
            continue
        for q in results["queries"]:
            e = q["results"].get(run["label"])
            if not e or e["status"] != "ok" or not e["median"]:
                continue
            extra = e.get("extra") or {}
            timed = {key: _median_or_nan((extra.get(key) or [])[warmup:])
                     for key in ("compute_seconds", "comm_seconds", "moved_bytes")}
            out.append(Measured(q["name"].lower(), run["ranks"], float(sf), e["median"], timed["compute_seconds"],
                                timed["comm_seconds"], timed["moved_bytes"]))
    return out


@dataclass(frozen=True)
class Row:
    nranks: int
    queries: int
    predicted_s: float
    predicted_comm_s: float
    measured_s: float
    measured_comm_s: float
    predicted_moved: float
    measured_moved: float
    near: int  # queries predicted within NEAR_FACTOR of their measured time


def compare(preds, measured: list[Measured]) -> list[Row]:
    """One Row per rank count both have, over the queries both have at every one of those rank
    counts (so the speed-ups compare like with like)."""
    predicted = {(p.sf, p.nranks, p.query): p for p in preds}
    found = [m for m in measured if (m.sf, m.nranks, m.query) in predicted]
    ranks = sorted({m.nranks for m in found})
    common = set.intersection(*({m.query for m in found if m.nranks == P} for P in ranks)) if ranks else set()
    rows = []
    for P in ranks:
        pairs = [(predicted[(m.sf, P, m.query)], m) for m in found if m.nranks == P and m.query in common]
        near = sum(1 for p, m in pairs if 1 / NEAR_FACTOR <= p.total_s / m.total_s <= NEAR_FACTOR)
        rows.append(Row(P, len(pairs), sum(p.total_s for p, _ in pairs), sum(p.comm_s for p, _ in pairs),
                        sum(m.total_s for _, m in pairs), sum(m.comm_s for _, m in pairs),
                        sum(p.bytes_moved for p, _ in pairs), sum(m.moved_bytes for _, m in pairs), near))
    return rows


def render_comparison(rows: list[Row], machine) -> str:
    if not rows:
        return "No measured rank count matches a predicted one (same scale factor, same queries)."
    base = rows[0]
    lines = [f"Model against measurement ({rows[0].queries} queries both have; measured: median of the timed "
             f"runs; comm: the slowest rank's). Machine: {machine.describe()}.",
             f"{'ranks':>6} {'predicted s':>12} {'measured s':>11} {'meas/pred':>9} {'pred speed-up':>13} "
             f"{'meas speed-up':>13} {'pred comm %':>11} {'meas comm %':>11} {'pred moved':>10} {'meas moved':>10} "
             f"{'within 2x':>10}"]
    lines.append("-" * len(lines[-1]))
    for r in rows:
        lines.append(f"{r.nranks:>6} {r.predicted_s:>12.3f} {r.measured_s:>11.3f} {r.measured_s / r.predicted_s:>9.2f} "
                     f"{base.predicted_s / r.predicted_s:>13.2f} {base.measured_s / r.measured_s:>13.2f} "
                     f"{100 * r.predicted_comm_s / r.predicted_s:>10.0f}% {100 * r.measured_comm_s / r.measured_s:>10.0f}% "
                     f"{human_bytes(r.predicted_moved):>10} {human_bytes(r.measured_moved):>10} "
                     f"{r.near:>5}/{r.queries:<4}")
    lines.append(f"speed-ups are against {base.nranks} rank(s) of the same column; moved: bytes sent between "
                 "ranks per run of the queries (measured: Arrow IPC bytes, framing included).")
    return "\n".join(lines)


def write_chart(preds, path: str | Path, machine, rows: list[Row] | None = None) -> Path:
    """Predicted total, compute and communication seconds (all queries) against the rank count, one
    colour per scale factor, log-log; measured totals as crosses where given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    from tpch.report import _finish

    fig, ax = plt.subplots(figsize=(7.0, 4.8))
    by_sf: dict[float, dict[int, list]] = {}
    for p in preds:
        by_sf.setdefault(p.sf, {}).setdefault(p.nranks, []).append(p)
    for sf, per_rank in sorted(by_sf.items()):
        ranks = sorted(per_rank)
        total = [sum(p.total_s for p in per_rank[P]) for P in ranks]
        line = ax.plot(ranks, total, marker="o", label=f"SF {sf:g}: predicted total")[0]
        colour = line.get_color()
        ax.plot(ranks, [sum(p.compute_s for p in per_rank[P]) for P in ranks], color=colour, linestyle="--",
                linewidth=1, label=f"SF {sf:g}: compute")
        ax.plot(ranks, [sum(p.comm_s for p in per_rank[P]) or math.nan for P in ranks], color=colour,
                linestyle=":", linewidth=1.5, label=f"SF {sf:g}: communication")
        ideal = [total[0] * ranks[0] / P for P in ranks]
        ax.plot(ranks, ideal, color="gray", linestyle="-", linewidth=0.6, alpha=0.6)
    if rows:
        ax.plot([r.nranks for r in rows], [r.measured_s for r in rows], "kx", markersize=9, label="measured total")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    all_ranks = sorted({p.nranks for p in preds})
    ax.set_xticks(all_ranks, [str(P) for P in all_ranks])
    ax.set_xlabel("ranks")
    ax.set_ylabel("seconds per rank, all queries (log)")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.tick_params(axis="y", which="minor", labelsize="x-small")
    ax.set_title(f"TPC-H strong scaling as the cost model predicts it (thin grey: ideal)\n{machine.describe()}",
                 fontsize="medium")
    return _finish(plt, fig, ax, Path(path))
