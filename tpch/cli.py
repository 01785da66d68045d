"""`flocksql tpch ...`: generate TPC-H data, run the TPC-H benchmark, run the micro-benchmarks, model
TPC-H at cluster scale.

The main CLI mounts this group with `main.add_command(tpch)`; `python -m tpch.cli`
runs it on its own.
"""

import json
import tempfile
from pathlib import Path

import click

from tpch import QUERY_NUMBERS, query_text
from tpch.bench import BenchConfig, BenchError, run_benchmark
from tpch.engines import ENGINE_NAMES
from tpch.generate import generate
from tpch.micro import OPERATIONS, generate_micro_data, micro_queries, parse_rows
from tpch.report import common_queries, write_results


def parse_int_list(text: str) -> list[int]:
    """'1,2,4' or '1-4' or '1-3,8' -> sorted distinct integers."""
    values: set[int] = set()
    for piece in text.split(","):
        piece = piece.strip()
        if not piece:
            continue
        if "-" in piece:
            lo, hi = (int(p) for p in piece.split("-", 1))
            if lo > hi:
                raise ValueError(f"empty range {piece!r}")
            values.update(range(lo, hi + 1))
        else:
            values.add(int(piece))
    if not values:
        raise ValueError(f"no numbers in {text!r}")
    return sorted(values)


def _int_list(ctx, param, value: str) -> tuple[int, ...]:
    try:
        return tuple(parse_int_list(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _name_list(allowed: tuple[str, ...]):
    def parse(ctx, param, value: str) -> tuple[str, ...]:
        names = tuple(dict.fromkeys(v.strip().lower() for v in value.split(",") if v.strip()))
        unknown = [n for n in names if n not in allowed]
        if unknown or not names:
            raise click.BadParameter(f"unknown {', '.join(unknown) or 'empty list'}; choose from {', '.join(allowed)}")
        return names

    return parse


@click.group()
def tpch():
    """TPC-H data generation and benchmarks."""


@tpch.command()
@click.option("--sf", type=float, default=1.0, show_default=True, help="Scale factor (1 = about 1 GB as text).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Output folder.")
@click.option("--parts", type=int, default=1, show_default=True,
              help="Split the big tables into this many files (<out>/<table>/<table>.<i>.parquet).")
def gen(sf: float, out_dir: str, parts: int):
    """Generate TPC-H data as Parquet (tables already present are kept)."""
    try:
        generate(sf, out_dir, parts=parts, progress=True)
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"TPC-H SF{sf:g} ready in {out_dir}")


def _bench_options(f):
    """Options shared by `bench` and `micro`."""
    options = [
        click.option("--ranks", default="1", show_default=True, callback=_int_list,
                     help="FlockSQL rank counts, e.g. 1,2,4 or 1-4."),
        click.option("--engines", default="flocksql,duckdb", show_default=True,
                     callback=_name_list(ENGINE_NAMES),
                     help=f"Comma-separated, from {', '.join(ENGINE_NAMES)}. DuckDB always runs (baseline and "
                          "oracle); missing optional peers are skipped."),
        click.option("--repeat", type=click.IntRange(min=1), default=3, show_default=True,
                     help="Timed runs per query after one warm-up; the median is reported."),
        click.option("--threads", type=click.IntRange(min=1), default=None,
                     help="Threads for DuckDB and the peers  [default: number of cores]"),
        click.option("--rank-threads", type=click.IntRange(min=1), default=None,
                     help="Threads per FlockSQL rank  [default: --threads divided by the rank count, at least 1, "
                          "so ranks sharing one machine do not oversubscribe it]"),
        click.option("--timeout", "timeout_s", type=float, default=600, show_default=True,
                     help="Seconds per query before it counts as failed (FlockSQL and DuckDB)."),
        click.option("--batch", is_flag=True,
                     help="Give each engine the whole query list at once (one MPI job per rank count) "
                          "instead of interleaving engines per query."),
        click.option("--rel-tol", type=float, default=1e-6, show_default=True,
                     help="Relative tolerance when comparing inexact numbers with DuckDB's answer."),
        click.option("--out", "out_dir", type=click.Path(file_okay=False), default="bench-results",
                     show_default=True, help="Folder for the results."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _run_and_report(queries: dict[str, str], config: BenchConfig, kind: str, out_dir: str, stem: str) -> None:
    try:
        results = run_benchmark(queries, config, kind=kind, progress=True)
    except BenchError as exc:
        raise click.ClickException(str(exc)) from exc
    written = write_results(results, out_dir, stem=stem)
    common = common_queries(results)
    total = sum(q["results"]["duckdb"]["median"] for q in common)
    click.echo(f"{len(common)}/{len(results['queries'])} queries answered correctly by every engine; "
               f"DuckDB total on those {total:.3f} s")
    bad = [(q["name"], lb, e["status"]) for q in results["queries"] for lb, e in q["results"].items()
           if e["status"] != "ok"]
    for name, label, status in bad:
        click.echo(f"  {name} on {label}: {status}")
    click.echo("wrote " + ", ".join(str(p) for p in written))


@tpch.command()
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False), required=True,
              help="TPC-H Parquet folder (from `flocksql tpch gen`).")
@click.option("--queries", "numbers", default=None, callback=lambda ctx, param, v: v if v is None else _int_list(ctx, param, v),
              help="Query numbers, e.g. 1-22 or 1,3,5-7.  [default: 1-22, or none when --sql is given]")
@click.option("--sql", "sql_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Also time the statement in this file, named after it (repeatable); "
                   "tpch/extra/ holds the strong-scaling join + group by.")
@_bench_options
def bench(data_dir, numbers, sql_files, ranks, engines, repeat, threads, rank_threads, timeout_s, batch, rel_tol,
          out_dir):
    """Time TPC-H queries on FlockSQL and peers; validate every answer against DuckDB."""
    if numbers is None:
        numbers = () if sql_files else tuple(QUERY_NUMBERS)
    bad = [n for n in numbers if n not in QUERY_NUMBERS]
    if bad:
        raise click.BadParameter(f"no TPC-H query {bad}", param_hint="--queries")
    queries = {f"Q{n}": query_text(n) for n in numbers}
    for path in sql_files:
        name = Path(path).stem
        if name in queries:
            raise click.BadParameter(f"two statements named {name}", param_hint="--sql")
        queries[name] = sql_file_text(path)
    config = BenchConfig(data_dir=data_dir, engines=engines, ranks=ranks, repeat=repeat, threads=threads,
                         rank_threads=rank_threads, timeout_s=timeout_s, batch=batch, rel_tol=rel_tol)
    _run_and_report(queries, config, "tpch", out_dir, "results")


@click.group()
def tpcds():
    """TPC-DS data generation and benchmarks (the 99 queries, 103 statements)."""


@tpcds.command("gen")
@click.option("--sf", type=float, default=1.0, show_default=True, help="Scale factor (1 = about 1 GB as text).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Output folder.")
@click.option("--parts", type=int, default=1, show_default=True,
              help="Split the big tables into this many files (<out>/<table>/<table>.<i>.parquet).")
@click.option("--row-group-bytes", default=None, help="Parquet row-group size, e.g. 1MB (small groups spread "
                                                      "small tables over more ranks).")
def tpcds_gen(sf: float, out_dir: str, parts: int, row_group_bytes: str | None):
    """Generate TPC-DS data as Parquet with tpcgen-cli (tables already present are kept)."""
    from tpch.tpcds.generate import generate as generate_tpcds
    try:
        generate_tpcds(sf, out_dir, parts=parts, row_group_bytes=row_group_bytes)
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"TPC-DS SF{sf:g} ready in {out_dir}")


@tpcds.command("bench")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False), required=True,
              help="TPC-DS Parquet folder (from `flocksql tpcds gen`).")
@click.option("--queries", "wanted", default="1-99", show_default=True,
              help="Statements, e.g. 1-10,14a,23 (a query number means all its statements).")
@_bench_options
def tpcds_bench(data_dir, wanted, ranks, engines, repeat, threads, rank_threads, timeout_s, batch, rel_tol, out_dir):
    """Time TPC-DS statements on FlockSQL and peers; validate every answer against DuckDB."""
    from tpch import tpcds as ds
    try:
        names = ds.parse_statements(wanted)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--queries") from exc
    queries = {f"Q{n}": ds.query_text(n) for n in names}
    config = BenchConfig(data_dir=data_dir, engines=engines, ranks=ranks, repeat=repeat, threads=threads,
                         rank_threads=rank_threads, timeout_s=timeout_s, batch=batch, rel_tol=rel_tol)
    _run_and_report(queries, config, "tpcds", out_dir, "tpcds-results")


def sql_file_text(path) -> str:
    """One statement from a file: comment lines and a trailing semicolon dropped."""
    lines = [line for line in Path(path).read_text().splitlines() if not line.lstrip().startswith("--")]
    text = "\n".join(lines).strip().rstrip(";").strip()
    if not text:
        raise click.BadParameter(f"{path} holds no statement", param_hint="--sql")
    return text


@tpch.command()
@click.option("--rows", default="10M", show_default=True, help="Rows per table, e.g. 1M, 10M, 2.5e7.")
@click.option("--ops", default=",".join(OPERATIONS), show_default=True, callback=_name_list(OPERATIONS),
              help="Operations to measure.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="Keep the generated tables here for later runs  [default: a temporary folder]")
@_bench_options
def micro(rows, ops, data_dir, ranks, engines, repeat, threads, rank_threads, timeout_s, batch, rel_tol,
          out_dir):
    """Strong-scaling micro-benchmarks: join, groupby, sort, union, window on generated tables."""
    try:
        nrows = parse_rows(rows)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--rows") from exc
    parts = max(ranks)
    with tempfile.TemporaryDirectory(prefix="flocksql-micro-") as scratch:
        # One folder per (rows, parts): the same --data serves runs of several sizes.
        folder = Path(data_dir or scratch) / f"{nrows}-rows-{parts}-parts"
        generate_micro_data(nrows, folder, parts=parts, progress=True)
        config = BenchConfig(data_dir=str(folder), engines=engines, ranks=ranks, repeat=repeat, threads=threads,
                             rank_threads=rank_threads, timeout_s=timeout_s, batch=batch, rel_tol=rel_tol)
        _run_and_report(micro_queries(nrows, ops), config, "micro", out_dir, "micro")


@tpch.command()
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False), required=True,
              help="A small TPC-H data set whose statistics are scaled (e.g. `flocksql tpch gen --sf 0.01`).")
@click.option("--data-sf", type=float, default=0.01, show_default=True, help="The scale factor of --data.")
@click.option("--ranks", default="16,64,256,1024", show_default=True, callback=_int_list, help="Rank counts.")
@click.option("--sf", "sfs", default="100,1000", show_default=True,
              help="Scale factors to predict, comma-separated (e.g. 100,1000).")
@click.option("--queries", "numbers", default="1-22", show_default=True, callback=_int_list,
              help="TPC-H query numbers.")
@click.option("--cores-per-rank", type=click.FloatRange(min=0, min_open=True), default=None,
              help="DuckDB threads per rank; local rates scale by it  [default: 1, the calibrated one-thread rates]")
@click.option("--shared-cores", type=click.FloatRange(min=0, min_open=True), default=None,
              help="All ranks share one machine with this many cores (a run on one box): a rank gets at most "
                   "this divided by the ranks  [default: none, every rank has its own cores]")
@click.option("--memory-per-rank", "memory_gib", type=float, default=None,
              help="GiB per rank, reported against (peaks over it are starred)  [default: 16]")
@click.option("--bandwidth", "bandwidth_gbs", type=float, default=None,
              help="GB/s per rank  [default: 1/beta of `flocksql calibrate`'s saved parameters, else 1]")
@click.option("--latency", "latency_us", type=float, default=None,
              help="Microseconds per message  [default: alpha of the saved parameters, else 50]")
@click.option("--per-query/--totals", default=True, show_default=True, help="A row per query, or totals only.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="Also write every prediction (with the patterns of its plan) to this CSV file.")
@click.option("--measured", "measured_paths", type=click.Path(exists=True, dir_okay=False), multiple=True,
              help="Results JSON of `flocksql tpch bench` at one of --sf: print the model beside its "
                   "FlockSQL runs (repeatable: e.g. one file per host layout).")
@click.option("--chart", "chart_path", type=click.Path(dir_okay=False), default=None,
              help="Also draw the predictions (and measured totals) against the rank count to this PNG "
                   "(needs matplotlib: pip install -e '.[bench]').")
def model(data_dir, data_sf, ranks, sfs, numbers, cores_per_rank, shared_cores, memory_gib, bandwidth_gbs,
          latency_us, per_query, csv_path, measured_paths, chart_path):
    """Predict TPC-H time, bytes moved and compute/communication per rank at cluster scale, from
    the plans the planner makes at each rank count (tpch/model.py). Predictions, not measurements."""
    import csv

    from engine.catalog import Catalog
    from planner.cost import CostParams
    from tpch.model import CSV_FIELDS, Machine, csv_rows, predict, render_table
    from tpch.model_check import compare, read_measured, render_comparison, write_chart
    from tpch.report import MATPLOTLIB_HINT
    try:
        scale_factors = [float(x) for x in sfs.split(",") if x.strip()]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--sf") from exc
    if not scale_factors or min(scale_factors) <= 0:
        raise click.BadParameter("scale factors must be positive", param_hint="--sf")
    bad = [n for n in numbers if n not in QUERY_NUMBERS]
    if bad:
        raise click.BadParameter(f"no TPC-H query {bad[0]}", param_hint="--queries")
    params = CostParams.load()
    machine = Machine.from_params(params, cores_per_rank=cores_per_rank, memory_per_rank_gib=memory_gib,
                                  bandwidth_gbs=bandwidth_gbs, latency_us=latency_us, shared_cores=shared_cores)
    measured = {}
    for path in measured_paths:
        try:
            measured[path] = read_measured(path)
        except (ValueError, KeyError, json.JSONDecodeError) as exc:
            raise click.BadParameter(f"{path}: {exc}", param_hint="--measured") from exc
    missing = sorted({m.sf for ms in measured.values() for m in ms} - set(scale_factors))
    if missing:
        raise click.BadParameter(f"the measurements are at SF {missing[0]:g}: add it to --sf",
                                 param_hint="--measured")
    catalog = Catalog(data_dir, statistics=True)
    preds = predict(catalog, {f"q{n}": query_text(n) for n in numbers}, ranks, scale_factors, machine, params,
                    base_sf=data_sf)
    click.echo(render_table(preds, machine, per_query=per_query))
    rows = []
    for path, ms in measured.items():
        rows.append(compare(preds, ms))
        click.echo(f"\n{path}:")
        click.echo(render_comparison(rows[-1], machine))
    if csv_path:
        with open(csv_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            writer.writeheader()
            writer.writerows(csv_rows(preds))
        click.echo(f"wrote {csv_path}")
    if chart_path:
        try:
            click.echo(f"wrote {write_chart(preds, chart_path, machine, [r for rs in rows for r in rs])}")
        except ImportError as exc:
            raise click.ClickException(f"no chart: {exc.name or 'matplotlib'} is not installed; "
                                       f"add it with: {MATPLOTLIB_HINT}") from exc


if __name__ == "__main__":
    tpch(prog_name="flocksql tpch")
