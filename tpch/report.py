"""Turn benchmark results (the dict bench.run_benchmark returns) into JSON, Markdown and charts.

Totals and geometric means are taken over the queries every run answered
correctly, so that the columns stay comparable; the row label says how many
queries that is. Charts need matplotlib (the `bench` extra); without it the
report says so and how to add it.
"""

import json
import math
from pathlib import Path

import click

from tpch.bench import BASELINE

# What to run when matplotlib is missing: the `bench` extra holds it.
MATPLOTLIB_HINT = "pip install matplotlib  (in a checkout of FlockSQL: pip install -e '.[bench]')"


def write_results(results: dict, out_dir: str | Path, stem: str = "results") -> list[Path]:
    """Write `<stem>.json`, `<stem>.md` and, with matplotlib, `<stem>_*.png` into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / f"{stem}.json", out / f"{stem}.md"]
    written[0].write_text(json.dumps(results, indent=2) + "\n")
    written[1].write_text(markdown(results))
    written.extend(write_charts(results, out, stem))
    return written


def _labels(results: dict) -> list[str]:
    return [run["label"] for run in results["runs"]]


def _scaled_runs(results: dict) -> dict[str, list[tuple[int, str]]]:
    """Engines measured at several rank counts: engine -> [(ranks, label)] sorted by ranks."""
    by_engine: dict[str, list[tuple[int, str]]] = {}
    for run in results["runs"]:
        if run["ranks"] is not None and run["engine"] != BASELINE:
            by_engine.setdefault(run["engine"], []).append((run["ranks"], run["label"]))
    return {e: sorted(rs) for e, rs in by_engine.items() if len(rs) > 1}


def common_queries(results: dict, labels: list[str] | None = None) -> list[dict]:
    """The queries that every run in `labels` (default: all) answered correctly."""
    labels = labels or _labels(results)
    return [
        q for q in results["queries"]
        if all(q["results"][lb]["status"] == "ok" and q["results"][lb]["median"] is not None for lb in labels)
    ]


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(max(v, 1e-9)) for v in values) / len(values)) if values else float("nan")


def _cell(entry: dict) -> str:
    if entry["status"] == "error":
        return "error"
    text = f"{entry['median']:.3f}" if entry["median"] is not None else "—"
    return text + (" ✗" if entry["status"] == "wrong" else "")


def _ratio(entry: dict, base: dict) -> str:
    if entry["median"] is None or base["median"] is None or entry["status"] == "error" or base["median"] <= 0:
        return ""
    return f"{entry['median'] / base['median']:.2f}"


def markdown(results: dict) -> str:
    """The results as Markdown: a header, one row per query, total and geomean rows, failures, scaling."""
    meta = results["meta"]
    labels = _labels(results)
    others = [lb for lb in labels if lb != BASELINE]
    title = {"tpch": "TPC-H benchmark", "tpcds": "TPC-DS benchmark"}.get(results["kind"], "Micro-benchmarks")
    sf = f"SF {meta['scale_factor']:g} · " if meta.get("scale_factor") else ""
    schedule = "one batch per run" if meta["batch"] else "runs interleaved per query"
    lines = [
        f"# {title}",
        "",
        f"{sf}data `{meta['data_dir']}` · {meta['threads']} threads per engine, "
        f"{_rank_threads_text(meta)} per FlockSQL rank · "
        f"median of {meta['repeat']} after {meta['warmup']} warm-up · {schedule}",
        "",
        f"Host {meta['host']['node']} ({meta['host']['cpus']} CPUs, {meta['host']['platform']}), "
        f"Python {meta['host']['python']}, DuckDB {meta['versions']['duckdb']}, "
        f"pyarrow {meta['versions']['pyarrow']}; started {meta['started']}, took {meta['wall_seconds']:.0f} s.",
        "",
        *_load_warning(meta),
        "Times in seconds. `×duckdb` is the engine's time over DuckDB's: below 1 is faster. "
        "✗ marks a wrong answer (timed anyway); details under Failures.",
        "",
    ]
    header = ["Query", f"{BASELINE} (s)"]
    for lb in others:
        header += [f"{lb} (s)", "×duckdb"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|---" + "|---:" * (len(header) - 1) + "|")
    for q in results["queries"]:
        base = q["results"][BASELINE]
        row = [q["name"], _cell(base)]
        for lb in others:
            row += [_cell(q["results"][lb]), _ratio(q["results"][lb], base)]
        lines.append("| " + " | ".join(row) + " |")

    common = common_queries(results)
    if common:
        n = f"{len(common)}/{len(results['queries'])}"
        totals = {lb: sum(q["results"][lb]["median"] for q in common) for lb in labels}
        geos = {lb: _geomean([q["results"][lb]["median"] for q in common]) for lb in labels}
        total_row = [f"**Total** ({n})", f"{totals[BASELINE]:.3f}"]
        geo_row = [f"**Geomean** ({n})", f"{geos[BASELINE]:.4f}"]
        for lb in others:
            total_row += [f"{totals[lb]:.3f}", f"{totals[lb] / totals[BASELINE]:.2f}"]
            geo_row += [f"{geos[lb]:.4f}", f"{geos[lb] / geos[BASELINE]:.2f}"]
        lines.append("| " + " | ".join(total_row) + " |")
        lines.append("| " + " | ".join(geo_row) + " |")
    else:
        lines.append("")
        lines.append("No query was answered correctly by every run, so there is no total.")

    failures = [
        (q["name"], lb, e)
        for q in results["queries"]
        for lb, e in q["results"].items()
        if e["status"] != "ok"
    ]
    if failures or meta.get("skipped"):
        lines += ["", "## Failures", ""]
        for skipped in meta.get("skipped", []):
            lines.append(f"- {skipped}")
        for name, lb, e in failures:
            what = e["error"] if e["status"] == "error" else e["diff"] or e["status"]
            lines.append(f"- {name} on {lb}: {e['status']}: {_one_line(what)}")

    for engine, runs in _scaled_runs(results).items():
        lines += ["", f"## Scaling of {engine}", ""]
        lines += _scaling_table(results, runs)
    lines += _memory_table(results)
    return "\n".join(lines) + "\n"


def _memory_table(results: dict) -> list[str]:
    """Peak resident memory per rank of each run that reports it (FlockSQL's batches do)."""
    rows = []
    for run in results["runs"]:
        label, peaks = run["label"], []
        for q in results["queries"]:
            per_rank = ((q["results"].get(label) or {}).get("extra") or {}).get("peak_rss_mb") or []
            if per_rank:
                peaks.append((max(per_rank), q["name"], len(per_rank)))
        if peaks:
            mib, name, ranks = max(peaks)
            rows.append(f"| {label} | {ranks} | {mib / 1024:.2f} | {name} |")
    if not rows:
        return []
    return ["", "## Peak memory", "", "| Run | ranks | peak RSS of the largest rank (GiB) | during |",
            "|---|---:|---:|---|", *rows, "",
            "A peak is over one batch, in processes of its own: one query with its warm-up and repeats "
            "when runs are interleaved, every query with --batch."]


# Above this share of the machine's CPU time used by other processes, the report warns.
OTHER_CPU_SHARE_MAX = 0.05


def _load_warning(meta: dict) -> list[str]:
    """A warning paragraph when other work was running on the machine while measuring."""
    load, cpus = meta.get("load_average") or {}, meta["host"]["cpus"] or 1
    share = meta.get("other_cpu_share")
    if share is not None:
        # Measured: CPU time used outside the benchmark's own processes during the run.
        if share <= OTHER_CPU_SHARE_MAX:
            return []
        return [f"**Warning:** other processes used {share:.0%} of the machine's CPU time during the run "
                f"(load average {load.get('before')} before it): times are inflated and noisy.", ""]
    before = load.get("before")
    # Without the measurement: more than half the cores busy just before the run means other work
    # was likely competing (the load after it is mostly the benchmark's own).
    if before is None or before <= cpus / 2:
        return []
    return [
        f"**Warning:** load average {before} just before the run on {cpus} CPUs: other work may have "
        "shared the machine, so times may be inflated and noisy.",
        "",
    ]


def _rank_threads_text(meta: dict) -> str:
    if meta.get("rank_threads"):
        return f"{meta['rank_threads']} threads"
    return f"{meta['threads']}/ranks threads"


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _scaling_table(results: dict, runs: list[tuple[int, str]]) -> list[str]:
    """Per query: time at each rank count, speedup over the fewest ranks, and parallel efficiency."""
    base_ranks, base_label = runs[0]
    header = ["Query"] + [f"{r} rank{'s' if r > 1 else ''} (s)" for r, _ in runs] + [f"speedup@{r}" for r, _ in runs[1:]]
    header += [f"efficiency@{r}" for r, _ in runs[1:]]
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    for q in results["queries"]:
        entries = [q["results"][lb] for _, lb in runs]
        row = [q["name"]] + [_cell(e) + _comm_share(e) for e in entries]
        base = entries[0]["median"] if entries[0]["status"] == "ok" else None
        speedups = []
        for (r, _), e in zip(runs[1:], entries[1:]):
            ok = base and e["status"] == "ok" and e["median"]
            speedups.append((base / e["median"], base / e["median"] * base_ranks / r) if ok else None)
        row += [f"{s[0]:.2f}" if s else "" for s in speedups]
        row += [f"{s[1]:.0%}" if s else "" for s in speedups]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", f"Speedup is time at {base_ranks} rank(s) over time at r ranks; efficiency is speedup × {base_ranks}/r."]
    return lines


def _comm_share(entry: dict) -> str:
    """' (comm 40%)' when the engine reported how long it spent communicating, else ''."""
    extra = entry.get("extra") or {}
    comm, compute = extra.get("comm_seconds"), extra.get("compute_seconds")
    if isinstance(comm, list):
        comm = comm[-1] if comm else None
    if isinstance(compute, list):
        compute = compute[-1] if compute else None
    if isinstance(comm, (int, float)) and isinstance(compute, (int, float)) and comm + compute > 0:
        return f" (comm {comm / (comm + compute):.0%})"
    return ""


def write_charts(results: dict, out_dir: Path, stem: str = "results",
                 warn=lambda msg: click.echo(f"warning: {msg}", err=True)) -> list[Path]:
    """Per-query bars and time-versus-ranks lines as PNG; without matplotlib none, and `warn` says
    which command adds it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        warn(f"no charts: {exc.name or 'matplotlib'} is not installed; add it with: {MATPLOTLIB_HINT}")
        return []
    written = []
    labels = _labels(results)
    queries = results["queries"]

    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(queries) * max(1, len(labels)) / 2), 4.5))
    width = 0.8 / len(labels)
    for j, lb in enumerate(labels):
        xs, ys = [], []
        for i, q in enumerate(queries):
            e = q["results"][lb]
            if e["status"] == "ok" and e["median"]:
                xs.append(i + (j - (len(labels) - 1) / 2) * width)
                ys.append(e["median"])
        ax.bar(xs, ys, width=width, label=lb)
    ax.set_xticks(range(len(queries)), [q["name"] for q in queries], rotation=0 if len(queries) < 12 else 45)
    ax.set_yscale("log")
    ax.set_ylabel("seconds (median, log scale)")
    ax.set_title("Time per query (correct answers only)")
    written.append(_finish(plt, fig, ax, out_dir / f"{stem}_per_query.png"))

    scaled = _scaled_runs(results)
    if scaled:
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        base_total = None
        for engine, runs in scaled.items():
            if results["kind"] in ("tpch", "tpcds"):
                common = common_queries(results, [lb for _, lb in runs] + [BASELINE])
                ys = [sum(q["results"][lb]["median"] for q in common) for _, lb in runs]
                ax.plot([r for r, _ in runs], ys, marker="o", label=f"{engine} ({len(common)} queries)")
                base_total = sum(q["results"][BASELINE]["median"] for q in common)
            else:
                for q in queries:
                    pts = [(r, q["results"][lb]["median"]) for r, lb in runs if q["results"][lb]["status"] == "ok"]
                    if pts:
                        line = ax.plot(*zip(*pts), marker="o", label=f"{engine} {q['name']}")[0]
                        base = q["results"][BASELINE]
                        if base["status"] == "ok" and base["median"]:
                            ax.axhline(base["median"], color=line.get_color(), linestyle=":", linewidth=1)
        if base_total is not None:
            ax.axhline(base_total, color="gray", linestyle="--", label=f"{BASELINE} ({results['meta']['threads']} threads)")
        ranks = sorted({r for runs in scaled.values() for r, _ in runs})
        ax.set_xticks(ranks)
        ax.set_xlabel("MPI ranks")
        ax.set_ylabel("seconds" + (" (total)" if results["kind"] in ("tpch", "tpcds") else " (dotted: DuckDB)"))
        ax.set_title("Time versus ranks (strong scaling)")
        ax.set_yscale("log")
        written.append(_finish(plt, fig, ax, out_dir / f"{stem}_scaling.png"))
    return written


def _finish(plt, fig, ax, path: Path) -> Path:
    """Legend, layout, PNG: the last steps every chart shares."""
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
