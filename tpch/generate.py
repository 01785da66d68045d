"""Generate TPC-H data as Parquet with `tpchgen-cli`, and find the tables of a data folder.

Layout of a data folder (tpchgen-cli's own):

    <dir>/<table>.parquet                   one file per table (parts=1, and small tables always)
    <dir>/<table>/<table>.<i>.parquet       i = 1..parts for the big tables when parts > 1

Generation is idempotent: a table whose files are already there is skipped, and
each table is written to a scratch folder first and moved into place whole, so
an interrupted run never leaves a half-written table behind.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from engine.leftovers import TEMP_MARK
from tpch import TABLES
from tpch.progress import Progress

# Tables split into `parts` files; the others are tiny at any scale factor
# (supplier is 10k rows per SF) and stay single files.
BIG_TABLES = ("lineitem", "orders", "partsupp", "customer", "part")


def tpchgen_executable() -> str:
    """Path of the `tpchgen-cli` console script: next to this Python first, then on PATH."""
    beside = Path(sys.executable).parent / "tpchgen-cli"
    if beside.exists():
        return str(beside)
    found = shutil.which("tpchgen-cli")
    if found is None:
        raise FileNotFoundError("tpchgen-cli not found next to the Python interpreter or on PATH")
    return found


def table_parts(table: str, parts: int) -> int:
    """How many files `table` is written as when generating with `parts`."""
    return parts if parts > 1 and table in BIG_TABLES else 1


def _single_file(out_dir: Path, table: str) -> Path:
    return out_dir / f"{table}.parquet"


def _part_files(out_dir: Path, table: str, parts: int) -> list[Path]:
    return [out_dir / table / f"{table}.{i}.parquet" for i in range(1, parts + 1)]


def _table_exists(out_dir: Path, table: str, parts: int) -> bool:
    """Whether `table` is already there in the layout `parts` asks for.

    Raises ValueError when it is there in another layout: mixing both would
    leave the folder ambiguous for every reader.
    """
    single = _single_file(out_dir, table)
    folder = out_dir / table
    if table_parts(table, parts) == 1:
        if folder.exists():
            raise ValueError(f"{folder} exists but {table} should be one file: use another output folder")
        return single.exists()
    if single.exists():
        raise ValueError(f"{single} exists but {table} should be {parts} parts: use another output folder")
    if not folder.exists():
        return False
    if sorted(folder.glob("*.parquet")) != sorted(_part_files(out_dir, table, parts)):
        raise ValueError(f"{folder} holds a different number of parts than {parts}: use another output folder")
    return True


def _format_sf(sf: float) -> str:
    return f"{sf:g}"


def _run_tpchgen(sf: float, out: Path, tables: list[str], nparts: int) -> None:
    """One tpchgen-cli run for `tables`, all split into `nparts` files, moved into `out` when done.

    Each run pays about two seconds of start-up (tpchgen builds its text pool),
    so small data sets are generated in as few runs as possible.
    """
    with tempfile.TemporaryDirectory(prefix=".tpchgen-", dir=out) as scratch:
        cmd = [
            tpchgen_executable(),
            "parquet",
            f"--scale-factor={_format_sf(sf)}",
            f"--tables={','.join(tables)}",
            f"--output-dir={scratch}",
            "--quiet",
        ]
        if nparts > 1:
            cmd.append(f"--parts={nparts}")
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"tpchgen-cli failed for {', '.join(tables)} (exit {done.returncode}): {done.stderr.strip()}")
        for table in tables:
            if nparts > 1:
                os.replace(Path(scratch) / table, out / table)
            else:
                os.replace(Path(scratch) / f"{table}.parquet", _single_file(out, table))


def generate(sf: float, out_dir: str | os.PathLike, parts: int = 1, progress: bool = True) -> Path:
    """Generate all eight TPC-H tables at scale factor `sf` into `out_dir`, skipping those present.

    With `parts` > 1 the big tables are split into that many files, so that each
    MPI rank can read its own share. With `progress` a bar advances table by
    table; without it, tables go in as few tpchgen-cli runs as possible.
    Returns the output folder.
    """
    if sf <= 0:
        raise ValueError(f"scale factor must be positive, got {sf}")
    if parts < 1:
        raise ValueError(f"parts must be at least 1, got {parts}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    missing = [t for t in TABLES if not _table_exists(out, t, parts)]  # smallest first
    if not progress:
        for nparts in sorted({table_parts(t, parts) for t in missing}):
            _run_tpchgen(sf, out, [t for t in missing if table_parts(t, parts) == nparts], nparts)
        return out
    with Progress(f"TPC-H SF{_format_sf(sf)} -> {out}", len(missing)) as bar:
        for table in missing:
            bar.step(table)
            _run_tpchgen(sf, out, [table], table_parts(table, parts))
    return out


def ensure_sample(out_dir: str | os.PathLike, sf: float = 0.01) -> Path:
    """A small data set (SF 0.01 by default, about 10 MB, a second or two) for tests and examples."""
    return generate(sf, out_dir, parts=1, progress=False)


def discover_tables(data_dir: str | os.PathLike) -> dict[str, str]:
    """Map each table in `data_dir` to what DuckDB should read: a file, or a glob over a folder of parts.

    Any `<name>.parquet` file or `<name>/` folder holding Parquet files counts,
    so the same function serves TPC-H and the micro-benchmark tables.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist")
    found: dict[str, str] = {}
    for entry in sorted(root.iterdir()):
        # Hidden write folders, and temporary tables private to a running flock's client sessions
        # (they come and go while the benchmark runs).
        if entry.name.startswith(".") or TEMP_MARK in entry.name:
            continue
        if entry.is_file() and entry.suffix == ".parquet":
            found[entry.stem] = str(entry)
        elif entry.is_dir() and any(entry.glob("*.parquet")):
            if entry.name in found:
                raise ValueError(f"{entry.name} is both a file and a folder in {root}")
            found[entry.name] = str(entry / "*.parquet")
    return found


def scale_factor_of(data_dir: str | os.PathLike) -> float | None:
    """The TPC-H scale factor of a data folder, read from the row count of `orders` (1.5M per SF)."""
    import pyarrow.parquet as pq

    tables = discover_tables(data_dir)
    if "orders" not in tables:
        return None
    files = sorted(Path(p) for p in _expand(tables["orders"]))
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    return round(rows / 1_500_000, 4)


def _expand(pattern: str) -> list[Path]:
    path = Path(pattern)
    return list(path.parent.glob(path.name)) if "*" in path.name else [path]
