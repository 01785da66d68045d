"""TPC-H for FlockSQL: the 22 queries, data generation, answer comparison and benchmarks.

The queries carry the spec's validation substitution parameters (TPC-H 2.4-2.5,
"validation" column), with computed dates written as literal dates so that
every engine sees plain standard SQL.
"""

from importlib import resources

QUERY_NUMBERS = range(1, 23)

TABLES = (
    "region",
    "nation",
    "supplier",
    "customer",
    "part",
    "partsupp",
    "orders",
    "lineitem",
)


def query_text(n: int) -> str:
    """The SQL text of TPC-H query `n` (1..22), without a trailing semicolon."""
    if n not in QUERY_NUMBERS:
        raise ValueError(f"TPC-H query number must be 1..22, got {n}")
    text = resources.files(__package__).joinpath("queries", f"q{n:02d}.sql").read_text()
    return text.strip().rstrip(";").strip()
