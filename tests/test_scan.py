"""Local slices of base tables: which columns are read as Arrow dictionaries, and that DuckDB gives
the same answers over them."""
from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from executors.scan import dictionary_columns, read_row_groups


def _write(path, rows=20_000):
    table = pa.table({
        "flag": pa.array(["A", "N", "R"] * (rows // 3) + ["A"] * (rows % 3)),
        "unique": pa.array([f"comment number {i:08d}" for i in range(rows)]),
        "n": pa.array(range(rows), pa.int64()),
    })
    pq.write_table(table, path, row_group_size=rows // 4)
    return table


def test_low_cardinality_strings_are_read_as_dictionaries(tmp_path):
    path = str(tmp_path / "t.parquet")
    _write(path)
    assert dictionary_columns(path, ["flag", "unique", "n"]) == ["flag"]
    assert dictionary_columns(path, ["unique", "n"]) == []
    part = read_row_groups(path, [1, 3], ["flag", "unique"])
    assert pa.types.is_dictionary(part.schema.field("flag").type)
    assert not pa.types.is_dictionary(part.schema.field("unique").type)
    assert part.num_rows == 10_000


def test_duckdb_answers_alike_over_dictionary_and_plain_reads(tmp_path):
    path = str(tmp_path / "t.parquet")
    _write(path)
    con = duckdb.connect()
    con.register("d", read_row_groups(path, [0, 2], ["flag", "n"]))
    con.register("p", pq.ParquetFile(path).read_row_groups([0, 2], columns=["flag", "n"]))
    q = "SELECT flag, count(*), sum(n) FROM {} WHERE flag <> 'N' GROUP BY flag ORDER BY flag"
    assert con.sql(q.format("d")).fetchall() == con.sql(q.format("p")).fetchall()
    assert con.sql(q.format("d")).fetchall()[0][0] == "A"


def test_decimal_statistics_stored_as_integers_are_read(tmp_path):
    """tpchgen-cli writes DECIMAL(15,2) as INT64, whose statistics pyarrow 26 cannot convert:
    the catalog scales the raw integers instead of failing to start."""
    import decimal

    from engine.catalog import Catalog
    prices = pa.array([decimal.Decimal("1.50"), decimal.Decimal("-2.25"), None], pa.decimal128(15, 2))
    pq.write_table(pa.table({"k": [1, 2, 3], "p": prices}), tmp_path / "t.parquet", store_decimal_as_integer=True)
    stats = Catalog(tmp_path).table("t").column("p")
    assert (stats.min, stats.max, stats.null_count) == (decimal.Decimal("-2.25"), decimal.Decimal("1.50"), 1)


def test_a_small_table_with_fewer_row_groups_than_ranks_is_read_by_one_rank(tmp_path):
    """Every rank read the whole file and kept its slice; now one rank reads it and the others none."""
    from engine.catalog import Catalog
    from executors.scan import assign_row_groups
    pq.write_table(pa.table({"k": list(range(25))}), tmp_path / "small.parquet")
    table = Catalog(tmp_path).table("small")
    for nranks in (2, 3):
        shares = [assign_row_groups(table, r, nranks) for r in range(nranks)]
        readers = [r for r, (mode, share) in enumerate(shares) if share]
        assert len(readers) == 1 and all(mode == "groups" for mode, _ in shares)
        assert shares[readers[0]][1] == [(table.files[0], None)]


def test_a_share_read_lazily_then_from_memory_holds_the_same_rows(tmp_path):
    """A rank's first read of part of a file is DuckDB's own, by row range (its first rows stream
    out at once); the second reads the share into memory for the cache. Both must be exactly the
    rank's row groups, and the ranks' shares together the whole table, once."""
    from engine.catalog import Catalog
    from executors.scan import ScanSource
    folder = tmp_path / "t"
    folder.mkdir()
    first = pa.table({"k": pa.array(range(0, 700), pa.int64()), "s": [f"v{i % 7}" for i in range(700)]})
    second = pa.table({"k": pa.array(range(700, 1000), pa.int64()), "s": [f"w{i % 3}" for i in range(300)]})
    pq.write_table(first, folder / "a.parquet", row_group_size=100)   # 7 row groups
    pq.write_table(second, folder / "b.parquet", row_group_size=100)  # 3 row groups
    table = Catalog(tmp_path).table("t")
    whole = sorted(pa.concat_tables([first, second]).to_pylist(), key=lambda r: r["k"])
    for nranks in (2, 3, 4):
        seen, partials = [], 0
        for rank in range(nranks):
            con = duckdb.connect()
            scans = ScanSource(con, rank, nranks)
            reads = [scans.source(table, ["k", "s"], replicated=False) for _ in range(3)]
            partial = reads[0].startswith("(")  # part of a file: lazy first, then from memory
            partials += partial
            assert not reads[0].startswith("_arrow_") and reads[1].startswith("_arrow_") == partial, reads
            rows = [sorted(con.sql(f"SELECT k, s FROM {src}").to_arrow_table().to_pylist(), key=lambda r: r["k"])
                    for src in reads]
            assert rows[0] == rows[1] == rows[2]
            seen += rows[0]
        assert sorted(seen, key=lambda r: r["k"]) == whole, nranks
        assert partials, nranks


@pytest.mark.parametrize("nranks", [2, 3, 4])
def test_row_groups_are_dealt_across_the_table_and_consecutive_in_order(tmp_path, nranks):
    """A table written in key order (TPC-DS inventory by date): each rank's share spans the whole
    table, so a filter on a stretch of the key finds rows on several ranks instead of one rank
    computing alone; the shares are balanced by rows and together the table, once. Read in_order
    (a positional join's side), each share is one consecutive run, in rank order."""
    from engine.catalog import Catalog
    from executors.scan import assign_row_groups
    sizes = [100] * 11 + [40]
    pq.write_table(pa.table({"k": pa.array(range(sum(sizes)), pa.int64())}), tmp_path / "t.parquet",
                   row_group_size=100)
    table = Catalog(tmp_path).table("t")
    assert [g.num_rows for g in table.row_groups] == sizes
    for in_order in (False, True):
        shares = [assign_row_groups(table, r, nranks, in_order)[1] for r in range(nranks)]
        groups = [[g for _, gs in share for g in (gs if gs is not None else range(len(sizes)))] for share in shares]
        assert sorted(g for gs in groups for g in gs) == list(range(len(sizes)))
        rows = [sum(sizes[g] for g in gs) for gs in groups]
        assert max(rows) - min(rows) <= 100, rows
        if in_order:
            flat = [g for gs in groups for g in gs]
            assert flat == sorted(flat) and all(gs == list(range(gs[0], gs[-1] + 1)) for gs in groups if gs)
        else:
            # Any stretch of a third of the groups (a year of five) is held by at least two ranks.
            for start in range(len(sizes) - 4 + 1):
                stretch = set(range(start, start + 4))
                assert sum(1 for gs in groups if stretch & set(gs)) >= 2, (start, groups)


def test_a_shares_columns_are_kept_one_by_one_and_evicted_by_bytes(tmp_path, monkeypatch):
    """From its second read on, a share comes from memory column by column: a query reading other
    columns of the share reads only those it lacks, every column set gives the file's rows, and
    past the cache's byte limit the least recently used columns go (their views with them) and are
    read again when asked for."""
    from engine.catalog import Catalog
    import executors.scan as scan
    folder = tmp_path / "t"
    folder.mkdir()
    n = 1000
    data = pa.table({"k": pa.array(range(n), pa.int64()), "a": pa.array([i * 2 for i in range(n)], pa.int64()),
                     "b": [f"s{i % 13}" for i in range(n)], "c": pa.array([i / 7 for i in range(n)], pa.float64())})
    pq.write_table(data, folder / "part-0.parquet", row_group_size=100)
    table = Catalog(tmp_path).table("t")
    reads: list[list[str]] = []
    real = scan.read_row_groups
    monkeypatch.setattr(scan, "read_row_groups", lambda f, gs, cols: reads.append(list(cols)) or real(f, gs, cols))
    con = duckdb.connect()
    src = scan.ScanSource(con, 0, 2)
    mode, share = scan.assign_row_groups(table, 0, 2)
    mine = pa.concat_tables([real(f, gs, ["k", "a", "b", "c"]) for f, gs in share]).to_pylist()

    def rows(cols):
        view = src.source(table, cols, replicated=False)
        got = con.sql(f"SELECT {', '.join(cols) or 'count(*) AS n'} FROM {view}").to_arrow_table().to_pylist()
        if not cols:
            assert got == [{"n": len(mine)}]
            return view
        assert sorted(got, key=lambda r: tuple(map(str, r.values()))) == \
            sorted([{c: r[c] for c in cols} for r in mine], key=lambda r: tuple(map(str, r.values())))
        return view

    assert rows(["k", "a"]).startswith("(")           # the first read is DuckDB's, from the file
    assert rows(["k", "a"]).startswith("_arrow_") and reads[-1] == ["k", "a"]
    rows(["a", "b"])
    assert reads[-1] == ["b"]                          # only the column not in memory yet
    before = len(reads)
    rows(["b", "k", "a"])
    rows([])
    assert len(reads) == before                        # all in memory
    # A limit that holds about two columns: reading c and k evicts a and b, which come back.
    one = data.column("k").get_total_buffer_size() // 2 + 1
    monkeypatch.setattr(scan, "CACHE_MAX_BYTES", 2 * one + 10)
    monkeypatch.setattr(scan, "FILL_MAX_SHARE", 1.0)
    rows(["c", "k"])
    assert ("a" not in {c for (_, c) in src._columns}) and reads[-1] == ["c"]
    rows(["a", "b", "c"])
    assert sorted(reads[-1]) == ["a", "b"]
    # Columns that would take more than FILL_MAX_SHARE of the cache stay DuckDB's to read.
    monkeypatch.setattr(scan, "FILL_MAX_SHARE", 0.01)
    before = len(reads)
    assert rows(["k", "c"]).startswith("(") and len(reads) == before


def test_a_columns_size_in_memory_counts_its_rows_not_its_encoded_pages(tmp_path):
    """A run-length-encoded key takes a few kB of pages and 4 bytes a row as an Arrow array: a
    share is judged too big for the cache by the latter."""
    from executors.scan import _uncompressed_bytes
    n = 1_000_000
    table = pa.table({"k": pa.array([i // 100_000 for i in range(n)], pa.int32()),
                      "s": pa.array(["x" * (i % 7) for i in range(n)])})
    path = str(tmp_path / "t.parquet")
    pq.write_table(table, path, row_group_size=250_000)
    meta = pq.ParquetFile(path).metadata
    pages = sum(meta.row_group(g).column(0).total_uncompressed_size for g in range(meta.num_row_groups))
    assert pages < n  # encoded: far under 4 bytes a row
    assert _uncompressed_bytes(path, None, ["k"], table.schema) == 4 * n
    assert _uncompressed_bytes(path, [0, 1], ["k"], table.schema) == 4 * n // 2
    strings = _uncompressed_bytes(path, None, ["s"], table.schema)
    assert strings == sum(meta.row_group(g).column(1).total_uncompressed_size for g in range(meta.num_row_groups))
