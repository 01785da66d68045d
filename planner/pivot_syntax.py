"""PIVOT's ON items written as whole expressions, for sqlglot.

DuckDB reads each ON item of its PIVOT statement as an expression (`PIVOT t ON x > 4`, `ON c IS
NULL`); sqlglot's DuckDB reader stops at the first comparison and fails. When a statement fails to
parse, `parenthesise_pivot_on` writes such items in parentheses, `(x > 4)`, which both read alike,
and the statement is parsed again. An item's IN list stays outside (`(x > 4) IN (true)`), and so
does an UNPIVOT entry's label (`(a, b) AS x`). DuckDB has checked the statement's syntax before, so
this only brackets what DuckDB already read as one expression.
"""
from __future__ import annotations

from sqlglot.dialects.duckdb import DuckDB
from sqlglot.tokens import TokenType

# Tokens that end a PIVOT's ON list at its own depth.
_ENDS = {TokenType.INTO, TokenType.USING, TokenType.GROUP_BY, TokenType.WHERE, TokenType.ORDER_BY,
         TokenType.LIMIT, TokenType.SEMICOLON, TokenType.UNION, TokenType.EXCEPT, TokenType.INTERSECT,
         TokenType.JOIN, TokenType.QUALIFY, TokenType.HAVING, TokenType.WINDOW}
_OPEN, _CLOSE = TokenType.L_PAREN, TokenType.R_PAREN


def parenthesise_pivot_on(sql: str) -> str | None:
    """`sql` with every PIVOT / UNPIVOT statement's ON items that hold an operator at their own
    depth written in parentheses; None where there is none."""
    try:
        tokens = DuckDB().tokenize(sql)
    except Exception:
        return None
    spans = []
    for at, token in enumerate(tokens):
        if token.token_type in (TokenType.PIVOT, TokenType.UNPIVOT):
            on = _on_after_source(tokens, at + 1)
            if on is not None:
                spans += _items(tokens, on + 1)
    if not spans:
        return None
    out, last = [], 0
    for start, end in spans:
        out += [sql[last:start], "(", sql[start:end + 1], ")"]
        last = end + 1
    return "".join(out) + sql[last:]


def _skip_group(tokens, at: int) -> int:
    """The index after the parenthesised group that opens at `at`."""
    depth = 0
    while at < len(tokens):
        depth += (tokens[at].token_type == _OPEN) - (tokens[at].token_type == _CLOSE)
        at += 1
        if depth == 0:
            break
    return at


def _on_after_source(tokens, at: int) -> int | None:
    """The ON of the statement form (`PIVOT source ON …`): the source is a parenthesised group or a
    dotted name; the standard form (`PIVOT (agg FOR …)`) has no ON there."""
    if at < len(tokens) and tokens[at].token_type == _OPEN:
        at = _skip_group(tokens, at)
    else:
        while at + 1 < len(tokens) and tokens[at + 1].token_type == TokenType.DOT:
            at += 2
        at += 1
    return at if at < len(tokens) and tokens[at].token_type == TokenType.ON else None


def _items(tokens, at: int) -> list[tuple[int, int]]:
    """The text spans (first and last character) to bracket among the ON items from `at`."""
    spans, start, operator = [], at, False

    def close(end: int) -> None:
        if operator and end > start:
            spans.append((tokens[start].start, tokens[end - 1].end))

    while at < len(tokens):
        kind = tokens[at].token_type
        if kind == _OPEN:
            at = _skip_group(tokens, at)
            continue
        if kind == _CLOSE or kind in _ENDS:
            break
        if kind == TokenType.COMMA:
            close(at)
            start, operator = at + 1, False
        elif kind in (TokenType.IN, TokenType.ALIAS):
            close(at)  # the IN list or the label stays outside the brackets
            start, operator = len(tokens), False
        elif kind not in (TokenType.VAR, TokenType.NUMBER, TokenType.STRING, TokenType.DOT, TokenType.PLUS,
                          TokenType.DASH, TokenType.STAR, TokenType.SLASH, TokenType.DPIPE):
            operator = True
        at += 1
    close(at)
    return spans
