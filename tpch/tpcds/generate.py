"""Generate TPC-DS data as Parquet with `tpcgen-cli`, in the layout `flocksql tpch gen` writes.

    <dir>/<table>.parquet                   one file per table (parts=1)
    <dir>/<table>/<table>.<i>.parquet       parts > 1: tpcgen-cli splits tables of 1M rows or more
                                            and writes the smaller ones as part 1 alone

The tables go in one tpcgen-cli run into a scratch folder inside `out_dir` and are moved
into place whole, so an interrupted run leaves no half-written table; tables already
there are kept. Any folder of the layout above is a FlockSQL data folder (`--data`).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tpch.tpcds import TABLES

# What `generate` wrote, in the data folder; hidden, so no reader takes it for a table.
RECORD = ".tpcds.json"


def tpcgen_executable() -> str:
    """Path of the `tpcgen-cli` console script: next to this Python first, then on PATH."""
    beside = Path(sys.executable).parent / "tpcgen-cli"
    if beside.exists():
        return str(beside)
    found = shutil.which("tpcgen-cli")
    if found is None:
        raise FileNotFoundError("tpcgen-cli not found next to the Python interpreter or on PATH")
    return found


def _present(out: Path, table: str, parts: int) -> bool:
    """Whether `table` is already in `out` in the layout `parts` asks for (the other layout is an error)."""
    single, folder = out / f"{table}.parquet", out / table
    wanted, other = (single, folder) if parts == 1 else (folder, single)
    if other.exists():
        raise ValueError(f"{other} exists but this run writes {wanted.name}: use another output folder")
    return wanted.exists()


def generate(sf: float, out_dir: str | os.PathLike, parts: int = 1, row_group_bytes: str | None = None,
             threads: int | None = None) -> Path:
    """Generate the 24 TPC-DS tables at scale factor `sf` into `out_dir`, skipping those present.

    `parts` > 1 splits the big tables into that many files, one per rank to read;
    `row_group_bytes` (e.g. "1MB") sets tpcgen-cli's row-group size: small row
    groups let several ranks share even a small table. `threads` caps the
    generator's threads (default: all cores). Returns the output folder.
    """
    if sf <= 0:
        raise ValueError(f"scale factor must be positive, got {sf}")
    if parts < 1:
        raise ValueError(f"parts must be at least 1, got {parts}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    missing = [t for t in TABLES if not _present(out, t, parts)]
    if not missing:
        return out
    with tempfile.TemporaryDirectory(prefix=".tpcgen-", dir=out) as scratch:
        cmd = [tpcgen_executable(), "tpcds", "parquet", f"--scale-factor={sf:g}", f"--tables={','.join(missing)}",
               f"--output-dir={scratch}", "--quiet"]
        if parts > 1:
            cmd.append(f"--parts={parts}")
        if row_group_bytes:
            cmd.append(f"--row-group-bytes={row_group_bytes}")
        if threads:
            cmd.append(f"--num-threads={threads}")
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"tpcgen-cli failed (exit {done.returncode}): {done.stderr.strip()}")
        for table in missing:
            name = table if parts > 1 else f"{table}.parquet"
            os.replace(Path(scratch) / name, out / name)
    (out / RECORD).write_text(json.dumps({"benchmark": "tpcds", "scale_factor": sf, "parts": parts}) + "\n")
    return out


def scale_factor_of(data_dir: str | os.PathLike) -> float | None:
    """The scale factor `generate` recorded in the data folder, or None for a folder made otherwise.

    Row counts do not give it back: dsdgen scales most tables sublinearly below SF 1.
    """
    try:
        return float(json.loads((Path(data_dir) / RECORD).read_text())["scale_factor"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
