"""The cost model's constants, in one calibratable place (`flocksql calibrate` measures them).

All costs are seconds per rank under an α–β model: a message costs α plus β per byte; local work
costs a per-row (or per-byte) rate. The planner compares alternatives for the same operator, so only
the ratios between these numbers matter much.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

CALIBRATION_FILE = Path(os.environ.get("FLOCKSQL_COST_FILE", Path.home() / ".flocksql" / "cost.json"))


@dataclass(frozen=True)
class CostParams:
    alpha: float = 50e-6            # s per message (latency)
    beta: float = 1.0e-9            # s per byte sent between ranks (incl. Arrow IPC framing)
    materialize_byte: float = 0.5e-9  # s per byte to turn a fragment's result into Arrow buffers
    # s per row read from Parquet (projected columns); TPC-H SF 1 files read by one DuckDB thread
    # cost 16-40 ns per row of 2-4 columns.
    scan_row: float = 25e-9
    hash_row: float = 30e-9         # s per row built or probed in a hash join
    # s per row sent through a shuffle besides its bytes: the partition id, the split, the IPC
    # framing (TPC-H Q22 at SF 1: 1.5M rows of one key cost ~30 ms a rank beyond the scan).
    shuffle_row: float = 30e-9
    agg_row: float = 20e-9          # s per row through a hash aggregate
    sort_row: float = 15e-9         # s per row per log2(rows) comparison
    broadcast_max_bytes: float = 512 * 2**20  # never replicate a side bigger than this
    # Fixed cost of one more exchange step: a fragment materialised by DuckDB, the ranks agreeing
    # at a collective, a view registered. It keeps small relations from being moved around twice.
    fragment: float = 2e-3

    @classmethod
    def load(cls, path: Path | None = None) -> "CostParams":
        p = Path(path or CALIBRATION_FILE)
        if p.exists():
            data = json.loads(p.read_text())
            known = {f.name for f in fields(cls)}
            return cls(**{k: float(v) for k, v in data.items() if k in known})
        return cls()

    def save(self, path: Path | None = None) -> Path:
        p = Path(path or CALIBRATION_FILE)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(asdict(self), indent=1))
        return p

    # ---------------------------------------------------------------- communication
    def shuffle(self, nbytes: float, nranks: int, rows: float = 0.0) -> float:
        """All-to-all of nbytes (in rows) in total, spread over the ranks: each rank partitions its
        share and sends (P-1)/P of it."""
        if nranks <= 1:
            return 0.0
        per_rank = nbytes / nranks
        return self.fragment + (nranks - 1) * self.alpha + per_rank * (nranks - 1) / nranks * self.beta \
            + per_rank * self.materialize_byte + rows / nranks * self.shuffle_row

    def allgather(self, nbytes: float, nranks: int) -> float:
        """Every rank ends with all nbytes."""
        if nranks <= 1:
            return 0.0
        return self.fragment + math.ceil(math.log2(nranks)) * self.alpha + nbytes * (nranks - 1) / nranks * self.beta \
            + nbytes / nranks * self.materialize_byte

    def gather(self, nbytes: float, nranks: int) -> float:
        """Rank 0 receives everything (the critical path is rank 0)."""
        if nranks <= 1:
            return 0.0
        return self.fragment + (nranks - 1) * self.alpha + nbytes * (nranks - 1) / nranks * self.beta \
            + nbytes / nranks * self.materialize_byte

    def sort(self, rows: float) -> float:
        return rows * math.log2(max(rows, 2.0)) * self.sort_row
