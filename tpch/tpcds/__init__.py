"""TPC-DS for FlockSQL: the 99 queries (103 statements) and data generation, beside TPC-H.

The queries are the TPC's `dsqgen` rendering of the official templates with the
qualification substitution parameters of the specification's Appendix B, made
plain SQL by make_queries.py (date arithmetic computed to literal dates, one
keyword alias quoted). Queries 14, 23, 24 and 39 have two statements each,
named `14a`/`14b` and so on. Benchmarks reuse tpch/bench.py, compare.py and
report.py: `flocksql tpch bench --suite tpcds`.
"""

from importlib import resources

MULTI_STATEMENT = (14, 23, 24, 39)

# "1", "2", ..., "14a", "14b", ..., "99": every statement, in query order.
STATEMENTS = tuple(
    f"{n}{part}" for n in range(1, 100) for part in (("a", "b") if n in MULTI_STATEMENT else ("",))
)

# The 24 tables of the schema (tpcgen-cli's dbgen_version, a record of the generator run, is left out).
TABLES = (
    "call_center",
    "catalog_page",
    "catalog_returns",
    "catalog_sales",
    "customer",
    "customer_address",
    "customer_demographics",
    "date_dim",
    "household_demographics",
    "income_band",
    "inventory",
    "item",
    "promotion",
    "reason",
    "ship_mode",
    "store",
    "store_returns",
    "store_sales",
    "time_dim",
    "warehouse",
    "web_page",
    "web_returns",
    "web_sales",
    "web_site",
)


def statement_number(statement: str) -> int:
    """'14a' -> 14, '7' -> 7."""
    return int(statement.rstrip("ab"))


def statement_file(statement: str) -> str:
    """'1' -> 'q01.sql', '14a' -> 'q14a.sql': the file under queries/."""
    number = statement_number(statement)
    return f"q{number:02d}{statement[len(str(number)):]}.sql"


def query_text(statement: str | int) -> str:
    """The SQL text of a TPC-DS statement ('1'..'99', '14a', '14b', ...), without a trailing semicolon."""
    name = str(statement).lower().removeprefix("q")
    if name not in STATEMENTS:
        raise ValueError(f"no TPC-DS statement {statement!r}: 1..99, with a/b for {MULTI_STATEMENT}")
    text = resources.files(__package__).joinpath("queries", statement_file(name)).read_text()
    return text.strip().rstrip(";").strip()


def parse_statements(text: str) -> list[str]:
    """'1-10,14a,23' -> ['1', ..., '10', '14a', '23a', '23b']: a query number means all its statements."""
    wanted: list[str] = []
    for piece in (p.strip().lower().removeprefix("q") for p in text.split(",")):
        if not piece:
            continue
        if piece in STATEMENTS:
            names = [piece]
        elif "-" in piece:
            lo, hi = (int(p) for p in piece.split("-", 1))
            if lo > hi:
                raise ValueError(f"empty range {piece!r}")
            names = [s for s in STATEMENTS if lo <= statement_number(s) <= hi]
        elif piece.isdigit():
            names = [s for s in STATEMENTS if statement_number(s) == int(piece)]
        else:
            names = []
        if not names:
            raise ValueError(f"no TPC-DS statement {piece!r}")
        wanted.extend(n for n in names if n not in wanted)
    if not wanted:
        raise ValueError(f"no statements in {text!r}")
    return sorted(wanted, key=STATEMENTS.index)
