"""The `flocksql` command: query, explain, serve, sql, tpch, calibrate, demo."""
from __future__ import annotations

import json
import sys
import time

import click

from engine.errors import FlockError


def _format_table(table, max_rows: int = 1000) -> str:
    import pyarrow as pa
    names = table.column_names
    shown = table.slice(0, max_rows).to_pylist()
    rows = [["NULL" if r[n] is None else str(r[n]) for n in names] for r in (dict(zip(names, row.values())) for row in shown)]
    types = [str(t) for t in table.schema.types]
    widths = [max([len(n), len(t)] + [len(r[i]) for r in rows]) for i, (n, t) in enumerate(zip(names, types))]
    numeric = [pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) for t in table.schema.types]

    def line(cells):
        return "│ " + " │ ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)) + " │"
    sep = "─" * (sum(widths) + 3 * len(widths) + 1)
    out = [sep, line(names), line(types), sep] + [line(r) for r in rows] + [sep]
    more = f" (showing {max_rows})" if table.num_rows > max_rows else ""
    out.append(f"{table.num_rows} row{'s' if table.num_rows != 1 else ''}{more}")
    return "\n".join(out)


def write_result(table, fmt: str, output: str | None) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    if fmt == "parquet":
        if not output:
            raise click.UsageError("--format parquet needs --output FILE")
        pq.write_table(table, output)
        return
    if fmt == "csv":
        import io
        buf = io.BytesIO()
        pacsv.write_csv(table, buf)
        text = buf.getvalue().decode()
    elif fmt == "json":
        text = "\n".join(json.dumps(r, default=str) for r in table.to_pylist())
    else:
        text = _format_table(table)
    if output:
        with open(output, "w") as f:
            f.write(text + "\n")
    else:
        click.echo(text)


@click.group()
@click.version_option(package_name="flocksql")
def cli():
    """FlockSQL: distributed SQL over a flock of DuckDB ranks."""


def _parse_patterns(ctx, param, values) -> dict:
    from planner import logical
    from planner.patterns import NAMES
    operators = {name for name, c in vars(logical).items()
                 if isinstance(c, type) and issubclass(c, logical.Node) and c not in (logical.Node, logical.Unary,
                                                                                       logical.SameColumns)}
    forced = {}
    for value in values:
        op, _, pattern = value.partition("=")
        if op not in operators:
            raise click.BadParameter(f"unknown operator {op!r}; choose from {', '.join(sorted(operators))}")
        if pattern not in NAMES:
            raise click.BadParameter(f"unknown pattern {pattern!r}; choose from {', '.join(NAMES)}")
        forced[op] = pattern
    return forced


def _common(f):
    f = click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False),
                     help="Folder of Parquet tables (NAME.parquet or NAME/*.parquet).")(f)
    f = click.option("--ranks", default=1, show_default=True, type=click.IntRange(min=1),
                     help="MPI ranks (FlockSQL starts mpiexec itself; under mpiexec/srun the given ranks are used).")(f)
    f = click.option("--threads", type=click.IntRange(min=1), help="DuckDB threads per rank (default: cores / ranks).")(f)
    f = click.option("--pattern", "patterns", multiple=True, metavar="OPERATOR=PATTERN", callback=_parse_patterns,
                     help="Plan every OPERATOR (Join, Aggregate, Distinct, Sort, Window, SetOp, …) with PATTERN "
                          "(e.g. Join=shuffle-compute) where that pattern applies; repeatable. A hint for "
                          "experiments: the cost-based choice stands where the pattern cannot run.")(f)
    f = click.option("--memory-limit", default=None, metavar="SIZE",
                     help="Memory budget per rank, e.g. 4GB (default: 75% of RAM / ranks on the node), shared by its DuckDB instances; "
                          "beyond their shares queries spill to a temporary folder.")(f)
    return f


@cli.command()
@_common
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]), default="table", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the result to this file.")
@click.option("--timing", is_flag=True, help="Print the elapsed time to stderr.")
@click.argument("sql")
def query(data_dir, ranks, threads, memory_limit, patterns, fmt, output, timing, sql):
    """Run one SQL statement and print its result."""
    from engine.launch import open_session
    with open_session(data_dir, ranks, threads, memory_limit=memory_limit, forced_patterns=patterns) as s:
        t0 = time.perf_counter()
        try:
            table = s.execute(sql)
        except FlockError as e:
            click.echo(f"Error: {e}", err=True)
            sys.exit(1)
        if timing:
            click.echo(f"Time: {time.perf_counter() - t0:.3f}s", err=True)
        write_result(table, fmt, output)


@cli.command()
@_common
@click.option("--analyze", is_flag=True, help="Run the query and add actual rows, bytes and times per stage "
                                              "and actual rows per operator (summed, and min/median/max "
                                              "over ranks).")
@click.option("--verbose", is_flag=True, help="Internal column ids and every priced alternative with its note.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "dot"]), default="text", show_default=True,
              help="json for programs, dot for Graphviz (dot -Tsvg).")
@click.argument("sql")
def explain(data_dir, ranks, threads, memory_limit, patterns, analyze, verbose, fmt, sql):
    """Print the distributed plan: each operator's pattern, estimates and the alternatives it beat."""
    from engine.launch import open_session
    with open_session(data_dir, ranks, threads, memory_limit=memory_limit, forced_patterns=patterns) as s:
        try:
            click.echo(s.explain(sql, analyze=analyze, verbose=verbose, fmt=fmt))
        except FlockError as e:
            click.echo(f"Error: {e}", err=True)
            sys.exit(1)


@cli.command()
@click.option("--ranks", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--rows", default=2_000_000, show_default=True, type=click.IntRange(min=10_000))
@click.option("--save/--no-save", default=True, show_default=True, help="Store the result for later sessions.")
def calibrate(ranks, rows, save):
    """Measure α, β and local scan/join/aggregate/sort rates on this machine for the cost model."""
    from engine.calibrate import calibrate as run
    params, path = run(ranks, rows, save)
    for k, v in params.__dict__.items():
        click.echo(f"{k:20s} {v:.3e}")
    if path:
        click.echo(f"saved to {path}")


@cli.command()
@click.option("--sf", default=0.1, show_default=True, type=float, help="TPC-H scale factor of the sample.")
@click.option("--dir", "data_dir", default="./flocksql-data", show_default=True, type=click.Path(file_okay=False))
@click.option("--ranks", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--port", default=8815, show_default=True, type=click.IntRange(0, 65535))
def demo(sf, data_dir, ranks, port):
    """Generate a TPC-H sample (once) and serve it on loopback: the README's first command."""
    import os
    from pathlib import Path
    if os.environ.get("FLOCKSQL_LAUNCHED") is None:
        from tpch.generate import generate
        target = Path(data_dir) / f"tpch-sf{sf:g}"
        generate(sf, str(target), progress=True)
    else:
        target = Path(data_dir) / f"tpch-sf{sf:g}"
    from server.cli import serve_command
    serve_command.main(["--data", str(target), "--ranks", str(ranks), "--host", "127.0.0.1", "--port", str(port)],
                       standalone_mode=True)


def _mount_optional():
    from server.cli import serve_command, sql_command
    cli.add_command(serve_command)
    cli.add_command(sql_command)
    from tpch.cli import tpcds, tpch
    cli.add_command(tpch)
    cli.add_command(tpcds)


_mount_optional()


def main():
    """The console script: FlockSQL's own errors (a bad data folder, a bad setting) print as one
    line instead of a traceback."""
    try:
        cli()
    except FlockError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
