"""Write tpch/tpcds/queries/q*.sql: the 99 TPC-DS queries with the spec's qualification parameters.

Run once, by hand, with a Python that has `benchbox` (it ships the TPC's dsqgen, the query
templates and the qualification values of the spec's Appendix B). benchbox pins an older pyarrow,
so keep it out of the project's environment:

    python3 -m venv /tmp/bbvenv && /tmp/bbvenv/bin/pip install benchbox
    /tmp/bbvenv/bin/python -m tpch.tpcds.make_queries       # from the repository root

dsqgen renders each template in its `netezza` dialect (`limit N`), with every substitution
parameter set to its qualification value. Two edits make the text plain SQL that DuckDB and the
peers all read, and nothing else is touched:

- date arithmetic `cast('2000-08-23' as date) + 14 days` becomes the computed literal
  `cast('2000-09-06' as date)` (as the TPC-H queries do);
- query 90's derived table alias `at`, a keyword in DuckDB, is quoted.

Queries 14, 23, 24 and 39 have two statements each; they become qNNa.sql and qNNb.sql.
"""

import datetime
import re
import sys
from pathlib import Path

from tpch.tpcds import STATEMENTS, statement_file, statement_number

_DATE_ARITHMETIC = re.compile(
    r"cast\s*\(\s*'(\d{4})-(\d{1,2})-(\d{1,2})'\s+as\s+date\s*\)\s*([+-])\s*(\d+)\s+days\b",
    re.IGNORECASE,
)
_AT_ALIAS = re.compile(r"\)\s+at\s*,")


def plain_sql(text: str) -> str:
    """dsqgen's netezza text with date arithmetic computed and the `at` alias quoted."""

    def shift(match: re.Match) -> str:
        year, month, day, sign, days = match.groups()
        delta = datetime.timedelta(days=int(days))
        base = datetime.date(int(year), int(month), int(day))
        return f"cast('{(base + delta if sign == '+' else base - delta).isoformat()}' as date)"

    text = _DATE_ARITHMETIC.sub(shift, text)
    text = _AT_ALIAS.sub(') "at",', text)
    return text.strip().rstrip(";").strip() + ";\n"


def main(out_dir: Path) -> None:
    from benchbox.core.tpcds.c_tools import DSQGenBinary
    from benchbox.core.tpcds.qualification.runner import qualification_parameters

    document = qualification_parameters()  # benchbox checks them against its Appendix B audit
    dsqgen = DSQGenBinary()
    out_dir.mkdir(parents=True, exist_ok=True)
    for statement in STATEMENTS:
        number = str(statement_number(statement))
        values = {k: v for k, v in document["values"][number].items()
                  if k not in document["not_in_template"].get(number, [])}
        text = dsqgen.generate_with_parameters(statement, values, scale_factor=1.0, dialect="netezza")
        (out_dir / statement_file(statement)).write_text(plain_sql(text))
    print(f"wrote {len(STATEMENTS)} statements into {out_dir}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "queries")
