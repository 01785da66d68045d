"""Parsing and name qualification: SQL text → a checked, qualified sqlglot tree.

The statement allow-list lives here: only queries (SELECT / WITH / VALUES / set operations),
EXPLAIN [ANALYZE], CREATE TABLE … AS, DROP TABLE, CREATE VIEW and DROP VIEW reach the planner.
Everything else (COPY, ATTACH, INSTALL, LOAD, PRAGMA, SET, EXPORT, …) is refused by name.
"""
from __future__ import annotations

import collections
import datetime as dt
import decimal
import functools
import re
import threading
from dataclasses import dataclass

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError
from sqlglot.errors import ParseError as SqlglotParseError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

from executors.scratch import scratch_cursor
from planner import table_functions
from planner.rules.lateral_table_functions import rewrite_lateral_table_functions
from planner.rules.named_windows import inline_named_windows
from planner.rules.using_joins import expand_using
from planner.duckdb_syntax import parse_statements
from planner.rules.unpivot import rewrite_unpivot
from planner.rules.qualify_clause import rewrite_qualify
from planner.rules.columns_expression import expand_columns
from planner.rules.ordinality import rewrite_ordinality
from planner.rules.limit_percent import fold_limits, rewrite_limit_percent, wrap_set_operations
from planner.rules.sample_clause import rewrite_samples
from planner.rules.rename_duplicate_columns import rename_duplicate_columns
from engine.catalog import DATABASE, SCHEMA
from engine.errors import CatalogError, FlockError, NotSupportedError, ParseError, PlanError

QUERY_TYPES = (exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Values, exp.Subquery)


@dataclass(frozen=True)
class Statement:
    """A classified statement: kind is query | explain | create_table | drop_table | create_view | drop_view."""

    kind: str
    query: exp.Expression | None = None
    name: str | None = None
    analyze: bool = False
    if_exists: bool = False
    or_replace: bool = False
    sql: str = ""
    explain: object = None  # planner/explain.py ExplainOptions, for kind explain


# Session and catalog statements (SET, SHOW, DESCRIBE, …) are recognised before parsing
# (engine/catalog_statements.py); here they are refused where they cannot stand (e.g. inside EXPLAIN).
REFUSED_STATEMENTS = ("COPY", "ATTACH", "DETACH", "INSTALL", "LOAD", "PRAGMA", "SET", "RESET", "EXPORT", "IMPORT",
                      "CALL", "CHECKPOINT", "VACUUM", "USE", "BEGIN",
                      "COMMIT", "ROLLBACK", "TRUNCATE", "CREATE SECRET", "CREATE MACRO", "CREATE FUNCTION",
                      "CREATE SEQUENCE", "CREATE TYPE", "CREATE INDEX", "UPDATE EXTENSIONS",
                      "FORCE INSTALL", "SUMMARIZE", "DESCRIBE", "SHOW")
_duck_lock = threading.Lock()
_duck_parser = None


def _check_syntax_with_duckdb(sql: str) -> None:
    """DuckDB's own parser is the reference for what is valid SQL (sqlglot accepts a few things
    DuckDB does not, such as `a > > b`); its message gives the line, and the caret the column."""
    global _duck_parser
    with _duck_lock:
        if _duck_parser is None:
            _duck_parser = scratch_cursor()
        try:
            _duck_parser.extract_statements(sql)
        except duckdb.ParserException as e:
            raise ParseError(_position_message(str(e))) from None
        except duckdb.Error:
            pass


def extract_statements(sql: str) -> list:
    """DuckDB's parser's split of a text into statements (each has `.query`)."""
    global _duck_parser
    with _duck_lock:
        if _duck_parser is None:
            _duck_parser = scratch_cursor()
        return _duck_parser.extract_statements(sql)


def _position_message(msg: str) -> str:
    lines = msg.splitlines()
    head = lines[0].replace("Parser Error: ", "") if lines else msg
    m = next((i for i, line in enumerate(lines) if re.match(r"LINE \d+: ", line)), None)
    if m is None:
        return f"syntax error: {head}" if not head.startswith("syntax error") else head
    line_no = int(re.match(r"LINE (\d+): ", lines[m]).group(1))
    prefix = len(re.match(r"LINE \d+: ", lines[m]).group(0))
    caret = lines[m + 1].find("^") if m + 1 < len(lines) else -1
    col = caret - prefix + 1 if caret >= prefix else 1
    context = lines[m][prefix:]
    if context.startswith("..."):
        col = None
    where = f"line {line_no}" + (f", column {col}" if col else "")
    return f"{head} at {where}\n  {context.strip()}"


def without_outer_comments(sql: str) -> str:
    """`sql` without the comments before its first token (blanked, newlines kept, so that an
    error's line and column still point into the text as sent) and after its last (DuckDB's
    tokenizer finds them, so `--` in a string is kept): tools put a comment before every statement
    (dbt's query comment), and the statements recognised by their first words (SHOW, SET,
    DESCRIBE, EXPLAIN, BEGIN, …) must still be."""
    if "--" not in sql and "/*" not in sql:
        return sql
    try:
        tokens = duckdb.tokenize(sql)
    except Exception:  # noqa: BLE001 - the statement's own parse reports the error
        return sql
    code = [i for i, (_, kind) in enumerate(tokens) if kind != duckdb.token_type.comment]
    if not code:
        return sql
    first, last = code[0], code[-1]
    start = tokens[first][0]
    end = tokens[last + 1][0] if last + 1 < len(tokens) else len(sql)
    blanked = "".join(c if c == "\n" else " " for c in sql[:start])
    return (blanked + sql[start:end]).rstrip()


def parse(sql: str) -> exp.Expression:
    first = " ".join(sql.strip().split()[:2]).upper()
    for word in REFUSED_STATEMENTS:
        if first == word or first.startswith(word + " ") or first.split(" ")[0] == word:
            raise NotSupportedError(f"statement {word}")
    _check_syntax_with_duckdb(sql)
    sql, lists = _fold_long_in_lists(sql)
    try:
        stmts = parse_statements(sql)
    except SqlglotParseError as e:
        err = e.errors[0] if e.errors else {}
        line, column = err.get("line"), err.get("col")
        desc = err.get("description") or str(e)
        raise ParseError(f"syntax error at line {line}, column {column}: {desc}") from None
    except sqlglot.errors.TokenError as e:
        raise ParseError(f"syntax error: {e}") from None
    if not stmts:
        raise ParseError("empty statement")
    if len(stmts) > 1:
        raise NotSupportedError("more than one statement at a time")
    stmt = stmts[0]
    if "--" in sql or "/*" in sql:
        _drop_comments(stmt)
    return _unfold_in_lists(stmt, lists) if lists else stmt


def _drop_comments(ast: exp.Expression) -> None:
    """Forget the comments sqlglot attached to nodes: a node compares equal to another only with
    the same comments, so `SELECT k /* c */ … GROUP BY k` (or a `-- c` after GROUP BY k, as
    tools append) did not find k among the group keys. Nothing in planning reads them."""
    for node in ast.walk():
        if node.comments:
            node.comments = None


# A literal IN list at least this long is kept as its text, one node, not one node per item: a
# 100,000-item list would otherwise be copied and walked by every step of planning (minutes).
LONG_IN_LIST = 256
_LIST_NAME = "__flocksql_in_list_"


def _fold_long_in_lists(sql: str) -> tuple[str, dict[str, str]]:
    """sql with each long `IN (constant, ...)` list replaced by a placeholder name, and the lists.

    DuckDB's tokenizer finds them (so a list inside a string or a comment is never touched)."""
    if sql.count(",") < LONG_IN_LIST:
        return sql, {}
    tokens = duckdb.tokenize(sql)
    starts = [t[0] for t in tokens] + [len(sql)]
    kinds = [t[1] for t in tokens]
    text = [sql[starts[i]:starts[i + 1]].strip() for i in range(len(tokens))]
    constant = (duckdb.token_type.numeric_const, duckdb.token_type.string_const)
    spans = []
    i = 0
    while i < len(tokens) - 2:
        if not (kinds[i] == duckdb.token_type.keyword and text[i].upper() == "IN" and text[i + 1] == "("):
            i += 1
            continue
        j, items = i + 2, 0
        while j < len(tokens):
            if text[j] in ("-", "+") and kinds[j] == duckdb.token_type.operator:
                j += 1
            if j >= len(tokens) or kinds[j] not in constant:
                break
            items += 1
            j += 1
            if j < len(tokens) and text[j] == ",":
                j += 1
                continue
            break
        if j < len(tokens) and text[j] == ")" and items >= LONG_IN_LIST:
            spans.append((starts[i + 2], starts[j]))
        i = j if j > i else i + 1
    if not spans:
        return sql, {}
    out, lists, last = [], {}, 0
    for n, (a, b) in enumerate(spans):
        name = f"{_LIST_NAME}{n}"
        lists[name] = sql[a:b].strip()
        out += [sql[last:a], name, " "]
        last = b
    out.append(sql[last:])
    return "".join(out), lists


def with_short_in_lists(ast: exp.Expression) -> exp.Expression | None:
    """A copy of ast whose long IN lists (kept as their text by parse) hold their first item only,
    for asking DuckDB's binder what it names the result's columns: binding a 100,000-item list
    takes it over a second, and the names are the same where no such list is in a select list.
    None when ast has no long list, or one inside a select list."""
    def long_list(n):
        return isinstance(n, exp.Var) and isinstance(n.parent, exp.In) and "," in n.name
    found = [n for n in ast.walk() if long_list(n)]
    if not found:
        return None
    for n in found:
        item = n
        while item.parent is not None and not (isinstance(item.parent, exp.Select) and item.arg_key == "expressions"):
            item = item.parent
        if item.parent is not None:
            return None
    short = ast.copy()
    for n in [n for n in short.walk() if long_list(n)]:
        n.replace(exp.Var(this=_first_item(n.name)))
    return short


def _first_item(items: str) -> str:
    """The first item of an IN list's text (a comma inside a string is not its end). Only a
    prefix is tokenized: the whole of a 100,000-item list takes DuckDB's tokenizer 75 ms."""
    for prefix in (items[:4096], items):
        commas = [start for start, _ in duckdb.tokenize(prefix) if prefix[start] == ","]
        if commas:
            return items[:commas[0]]
    return items


def _unfold_in_lists(ast: exp.Expression, lists: dict[str, str]) -> exp.Expression:
    def put_back(n):
        if isinstance(n, exp.Column) and not n.table and n.name in lists and isinstance(n.parent, exp.In):
            return exp.Var(this=lists[n.name])
        return n
    return ast.transform(put_back)


def bind_params(ast: exp.Expression, params) -> exp.Expression:
    """Replaces ? / $n placeholders with literals of the given Python values."""
    # Depth-first, in argument order: the order the placeholders appear in the text.
    holders = [n for n in ast.walk(bfs=False) if isinstance(n, (exp.Placeholder, exp.Parameter))]
    if not holders:
        if params:
            raise ParseError(f"statement has no parameters but {len(params)} were given")
        return ast
    params = list(params or [])
    ast = ast.copy()
    holders = [n for n in ast.walk(bfs=False) if isinstance(n, (exp.Placeholder, exp.Parameter))]
    pos = 0
    for h in holders:
        key = h.this if isinstance(h, exp.Placeholder) else h.name
        if key is not None and str(key).isdigit():
            idx = int(str(key)) - 1
        else:
            idx, pos = pos, pos + 1
        if idx >= len(params):
            raise ParseError(f"missing value for parameter {idx + 1}")
        h.replace(to_literal(params[idx]))
    return ast


def to_literal(v) -> exp.Expression:
    if v is None:
        return exp.Null()
    if isinstance(v, bool):
        return exp.Boolean(this=v)
    if isinstance(v, int):
        return exp.Literal.number(v)
    if isinstance(v, float):
        return exp.cast(exp.Literal.number(repr(v)), "DOUBLE")
    if isinstance(v, decimal.Decimal):
        return exp.cast(exp.Literal.string(str(v)), f"DECIMAL(38,{max(0, -v.as_tuple().exponent)})")
    if isinstance(v, dt.datetime):
        return exp.cast(exp.Literal.string(v.isoformat(sep=" ")), "TIMESTAMP")
    if isinstance(v, dt.date):
        return exp.cast(exp.Literal.string(v.isoformat()), "DATE")
    if isinstance(v, bytes):
        return exp.cast(exp.Literal.string(v.hex()), "BLOB")
    if isinstance(v, str):
        return exp.Literal.string(v)
    raise NotSupportedError(f"parameter of type {type(v).__name__}")


def object_name(table: exp.Expression) -> str:
    """The catalog's name of a table or view a statement creates, drops or writes: `t` in schema
    main (`t`, `main.t`, `memory.main.t`), `s.t` in schema s. Whether s exists is checked when it runs."""
    if not isinstance(table, exp.Table):
        raise NotSupportedError(f"writing to {table.sql('duckdb')}")
    catalog, db = table.args.get("catalog"), table.args.get("db")
    if catalog is not None and catalog.name.lower() != DATABASE:
        raise CatalogError(f"unknown table: {table.sql('duckdb')} (the database is {DATABASE})")
    schema = db.name.lower() if db is not None else SCHEMA
    return table.name.lower() if schema == SCHEMA else f"{schema}.{table.name.lower()}"


def classify(ast: exp.Expression, sql: str = "") -> Statement:
    if isinstance(ast, QUERY_TYPES + (exp.Pivot,)):
        return Statement("query", ast, sql=sql)
    if isinstance(ast, exp.Describe) or (isinstance(ast, exp.Command) and ast.name.upper() == "EXPLAIN"):
        return _explain(ast, sql)
    if isinstance(ast, exp.Create):
        kind = (ast.args.get("kind") or "").upper()
        name = object_name(ast.this.this if isinstance(ast.this, exp.Schema) else ast.this)
        body = ast.expression
        if kind == "TABLE" and isinstance(body, QUERY_TYPES):
            return Statement("create_table", body, name=name.lower(), or_replace=bool(ast.args.get("replace")),
                             if_exists=bool(ast.args.get("exists")), sql=sql)
        if kind == "VIEW" and isinstance(body, QUERY_TYPES):
            return Statement("create_view", body, name=name.lower(), or_replace=bool(ast.args.get("replace")),
                             if_exists=bool(ast.args.get("exists")), sql=sql)
        raise NotSupportedError(f"CREATE {kind} without AS SELECT" if kind == "TABLE" else f"CREATE {kind}")
    if isinstance(ast, exp.Drop):
        kind = (ast.args.get("kind") or "").upper()
        if kind in ("TABLE", "VIEW"):
            tables = ast.args.get("tables") or ([ast.this] if ast.this is not None else [])
            if len(tables) != 1:
                raise NotSupportedError(f"DROP {kind} of {len(tables)} objects at once")
            return Statement(f"drop_{kind.lower()}", None, name=object_name(tables[0]),
                             if_exists=bool(ast.args.get("exists")), sql=sql)
        raise NotSupportedError(f"DROP {kind}")
    what = ast.key.upper()
    if isinstance(ast, exp.Command):
        what = str(ast.this).upper()
    raise NotSupportedError(f"statement {what}")


def _explain(ast, sql: str) -> Statement:
    text = sql.strip().rstrip(";")
    head = text.split(None, 1)
    rest = head[1] if len(head) > 1 else ""
    from planner.explain import parse_options
    options, rest = parse_options(rest)
    inner = parse(rest)
    if not isinstance(inner, QUERY_TYPES):
        raise NotSupportedError("EXPLAIN of a statement that is not a query")
    return Statement("explain", inner, analyze=options.analyze, sql=rest, explain=options)


def expand_views(ast: exp.Expression, catalog) -> exp.Expression:
    return ast


def _check_parenthesised_joins(ast: exp.Expression) -> None:
    """sqlglot's qualify cannot resolve USING in a SELECT with a parenthesised join
    (`a JOIN (b JOIN c USING (k)) …` reports an unknown table ''): refuse it plainly instead."""
    for sub in ast.find_all(exp.Subquery):
        if not (isinstance(sub.this, exp.Table) and sub.this.args.get("joins")):
            continue
        select = sub.find_ancestor(exp.Select)
        if select is not None and any(j.args.get("using") for j in select.find_all(exp.Join)
                                      if j.find_ancestor(exp.Select) is select):
            raise NotSupportedError("USING in a query with a parenthesised join (a JOIN (b JOIN c …) …): write ON")


def _check_silent_modifiers(ast: exp.Expression) -> None:
    """Clauses that sqlglot keeps beside the node they change and that nothing here reads: answering
    without them would be a wrong answer (all the rows of `FETCH FIRST 3 ROWS WITH TIES`)."""
    for options in ast.find_all(exp.LimitOptions):
        if options.args.get("with_ties"):
            raise NotSupportedError("FETCH … WITH TIES")


def qualify_statement(ast: exp.Expression, catalog) -> exp.Expression:
    """Checks table names against the catalog, then qualifies every column (sqlglot's qualify)."""
    ast = rewrite_unpivot(ast, lambda name: columns_of(name, catalog), lambda query: _query_columns(query, catalog))
    cte_names = {c.alias_or_name.lower() for c in ast.find_all(exp.CTE)}
    if any(t.args.get("pivots") for t in ast.find_all(exp.Table, exp.Subquery)) or any(ast.find_all(exp.Pivot)):
        raise NotSupportedError("PIVOT")
    _check_order_keys(ast)
    spelled = _grouping_units_as_written(ast)
    ast = _expand_grouping_positions(ast)
    _check_silent_modifiers(ast)
    ast = rewrite_samples(ast, lambda name: None if name.lower() in cte_names else columns_of(name, catalog))
    ast = wrap_set_operations(fold_limits(ast))
    ast = rewrite_ordinality(ast)
    ast = inline_named_windows(ast)
    ast = table_functions.name_columns(ast, lambda item: _columns_or_none(item, ast, catalog))
    ast = rewrite_lateral_table_functions(ast)
    ast, generated, schema = table_functions.hide(ast)
    ast = expand_using(ast, lambda item: _item_columns(item, ast, catalog, schema))
    _check_parenthesised_joins(ast)
    for t in ast.find_all(exp.Table):
        if not isinstance(t.this, exp.Identifier):
            raise NotSupportedError(f"table function {t.this.sql('duckdb')}")
        if t.name in generated:
            continue
        if t.args.get("db") or t.args.get("catalog") or (len(getattr(catalog, "search_path", ())) > 1
                                                         and t.name.lower() not in cte_names):
            _resolve_table(t, catalog)
        name = t.name.lower()
        if name in cte_names and not catalog.has_table(name):
            continue
        if name in catalog.views:
            schema[name] = view_schema(name, catalog)
            continue
        if not catalog.has_table(name):
            raise CatalogError(f"unknown table: {t.name}")
        schema[name] = {_schema_column(f.name): sql_type_name(f.type) for f in catalog.table_schema(name)}
    try:
        ast = expand_columns(ast, lambda statement: _qualify(statement, schema))
        _name_items_as_duckdb(ast)
        _refuse_qualify_without_window(ast)
        _refuse_ambiguous_alias_names(ast, schema)
        try:
            qualified = _qualify_unique(ast, schema)
        except OptimizeError as e:
            lateral = _derived_tables_as_lateral(ast)
            if lateral is None or not _unresolved(str(e)):
                raise
            qualified = _qualify_unique(lateral, schema)
        _check_grouping_spellings(spelled, qualified)
        qualified = rewrite_limit_percent(qualified)
        return table_functions.restore(_with_types(rewrite_qualify(qualified), schema), generated)
    except OptimizeError as e:
        msg = str(e)
        if m := re.fullmatch(r"Unknown output column: (\d+)", msg):
            raise CatalogError(f"ORDER BY / GROUP BY term out of range: {m.group(1)} is past the select list") from None
        m = re.search(r"Column '([^']+)' could not be resolved", msg)
        if m:
            name = m.group(1).split(".")[-1].strip('"')
            holders = [t for t in schema if name in schema[t]]
            refs = [t for t in ast.find_all(exp.Table) if t.name.lower() in holders]
            if len(refs) > 1:
                raise CatalogError(f"ambiguous column reference: {name} (in {', '.join(sorted({t.alias_or_name for t in refs}))})") from None
        if _unresolved(msg):
            raise CatalogError(f"unknown column: {msg}") from None
        raise CatalogError(msg) from None


def _query_columns(query: exp.Expression, catalog) -> list[str] | None:
    """A query's output column names, as its qualification expands them (None where it cannot)."""
    try:
        return list(qualify_statement(query, catalog).named_selects)
    except FlockError:
        return None


def _schema_column(name: str) -> str:
    """A column name as sqlglot's schema reads it: it parses names, so one with a quote in it (DuckDB
    names an unaliased `'N'` so) is written quoted, or it would be read as the string N."""
    return '"' + name.replace('"', '""') + '"' if "'" in name or '"' in name else name


def _qualify(ast: exp.Expression, schema: dict, validate: bool = True) -> exp.Expression:
    return qualify(ast, schema=schema, dialect="duckdb", validate_qualify_columns=validate, quote_identifiers=False,
                   identify=False)


def _name_items_as_duckdb(ast: exp.Expression) -> None:
    """sqlglot names an unaliased `CAST(x AS VARCHAR)` (or `t.x::INT`, `l[1]`) after its column, x;
    DuckDB names it by its text, and x stays the column's name. Where that differs in what a name
    means, the item gets its text as alias (in place):
    - in a derived table, CTE or subquery, always: `SELECT x FROM (SELECT x::VARCHAR, x FROM n)` is
      the integer column (it was the text), and `SELECT x FROM (SELECT x::INT FROM n)` DuckDB's error;
    - in any query whose ORDER BY names the item's column: `ORDER BY x` sorts by x, not by the text
      (after a UNION, where no column x is in reach, it then fails, as in DuckDB)."""
    for node in ast.find_all(exp.Select, exp.SetOperation):
        select = node
        while isinstance(select, exp.SetOperation):  # a set operation's names are its first query's
            select = select.this
        if not isinstance(select, exp.Select):
            continue
        order = node.args.get("order")
        ordered = {o.this.name.lower() for o in order.expressions
                   if isinstance(o.this, exp.Column) and not o.this.table} if order is not None else set()
        inner = node is not ast and node.find_ancestor(exp.Subquery, exp.CTE) is not None
        if not ordered and not inner:
            continue
        named = {e.alias_or_name.lower() for e in select.expressions if isinstance(e, (exp.Alias, exp.Column))}
        unnamed = [item for item in select.expressions
                   if not isinstance(item, (exp.Alias, exp.Column, exp.Star, exp.Paren, exp.Dot))]
        if inner:
            # Any item a name can reach: `SELECT "(x + 0)" FROM (SELECT x + 0 FROM n)`. Two items of
            # one text keep sqlglot's names (DuckDB's reference to them is ambiguous).
            texts = [duckdb_item_name(item) for item in unnamed]
            counts = collections.Counter(texts)
            for item, text in zip(unnamed, texts):
                if item.output_name or (counts[text] == 1 and text.lower() not in named):
                    item.replace(exp.alias_(item.copy(), text, quoted=True))
            continue
        for item in unnamed:  # the outermost query: only where its ORDER BY names the item's column
            name = item.output_name.lower()
            if name and name in ordered and name not in named:
                item.replace(exp.alias_(item.copy(), duckdb_item_name(item), quoted=True))


def duckdb_item_name(item: exp.Expression) -> str:
    """The name DuckDB gives an unaliased select item: its parser's text of the expression
    (`(x + 0)`, `count_star()`, `CAST(x AS VARCHAR)`), read from DuckDB's own parser. sqlglot's
    rendering stands in for the user's text: where it renames a function (`substr` → `SUBSTRING`)
    a reference by DuckDB's name fails as unknown, never binds elsewhere."""
    text = item.sql("duckdb")
    if any(t.this == exp.DataType.Type.TEXT for t in item.find_all(exp.DataType)):
        text = re.sub(r"(?<=[ (])TEXT(?=[\[),])", "VARCHAR", text)  # sqlglot reads VARCHAR as TEXT
    try:
        return duckdb.SQLExpression(text).get_name()
    except duckdb.Error:
        return text


def _refuse_qualify_without_window(ast: exp.Expression) -> None:
    """DuckDB's binder error for a QUALIFY in a query with no window function (this filtered it as
    a WHERE)."""
    for select in ast.find_all(exp.Select):
        if select.args.get("qualify") is not None and not any(
                w.find_ancestor(exp.Select) is select for w in select.find_all(exp.Window)):
            raise PlanError("at least one window function must appear in the SELECT column or QUALIFY clause")


def _refuse_ambiguous_alias_names(ast: exp.Expression, schema: dict) -> None:
    """DuckDB binds a bare name to a column of the FROM items before a select alias of that name:
    in `SELECT t.k AS k, k * 3 FROM t, s` the second `k` is ambiguous (t.k or s.k), where sqlglot's
    qualification takes the alias. Raises DuckDB's error there."""
    def alias_references(select: exp.Select) -> set[str]:
        """Bare names that sqlglot may read as a select alias: one naming another item's alias, or
        any alias from WHERE, GROUP BY or HAVING (`max(x) AS x` reads the column: not one)."""
        aliases = [e.alias.lower() if isinstance(e, exp.Alias) else None for e in select.expressions]
        if not any(aliases):
            return set()
        clauses = [(own, item) for own, item in zip(aliases, select.expressions)]
        clauses += [(None, select.args.get(k)) for k in ("where", "group", "having")]
        found = set()
        for own, clause in clauses:
            for column in clause.find_all(exp.Column) if clause is not None else ():
                name = column.name.lower()
                if (not column.table and name != own and name in aliases
                        and column.find_ancestor(exp.Select) is select):
                    found.add(name)
        return found

    if not any(alias_references(select) for select in ast.find_all(exp.Select)):
        return
    try:
        loose = qualify(ast.copy(), schema=schema, dialect="duckdb", validate_qualify_columns=False,
                        expand_alias_refs=False, quote_identifiers=False, identify=False)
    except OptimizeError:
        return  # the qualification proper reports what is wrong
    for select in loose.find_all(exp.Select):
        referenced = alias_references(select)
        if not referenced:
            continue
        sources = [select.args["from_"].this] if select.args.get("from_") else []
        sources += [join.this for join in select.args.get("joins") or []]
        held = {}
        for source in sources:
            if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier):
                columns = {c.lower() for c in schema.get(source.name.lower(), {})}
            elif isinstance(source, exp.Subquery) and isinstance(source.this, exp.Query):
                columns = {c.lower() for c in source.this.named_selects}
            else:
                continue
            for name in columns:
                held.setdefault(name, []).append(source.alias_or_name)
        for name in referenced:
            if len(held.get(name, ())) > 1:
                raise CatalogError(f"ambiguous column reference: {name} (in {', '.join(sorted(held[name]))})")


def _qualify_unique(ast: exp.Expression, schema: dict) -> exp.Expression:
    """The qualified statement, with repeated column names of derived tables and CTEs renamed as
    DuckDB renames them (planner/rules/rename_duplicate_columns.py). Qualification runs again where
    that renaming changes what names mean: a star over the renamed columns, which sqlglot left
    unexpanded, or a column that names a renamed one (`id_1`), which it could not resolve."""
    try:
        qualified = _qualify(ast.copy(), schema)
    except OptimizeError as unresolved:
        try:
            loose, renamed = rename_duplicate_columns(_qualify(ast.copy(), schema, validate=False))
        except OptimizeError:
            renamed = False
        if not renamed:
            raise unresolved from None
        return _qualify(loose, schema)
    qualified, renamed = rename_duplicate_columns(qualified)
    if renamed and any(isinstance(p, exp.Star) or (isinstance(p, exp.Column) and isinstance(p.this, exp.Star))
                       for select in qualified.find_all(exp.Select) for p in select.expressions):
        qualified = _qualify(qualified, schema)
    return qualified


def _item_columns(item: exp.Expression, ast: exp.Expression, catalog, generated: dict) -> list[str]:
    """The column names of a FROM item of ast: a table, view, CTE, derived table or stand-in of a
    table function (generated: their schema); for planner/rules/using_joins.py."""
    alias = item.args.get("alias")
    if alias is not None and alias.columns and not isinstance(item, exp.Table):
        return [c.name for c in alias.columns]
    if isinstance(item, exp.Table) and isinstance(item.this, exp.Identifier):
        name = item.name
        names = None
        if name in generated:
            names = list(generated[name])
        else:
            cte = next((c for c in ast.find_all(exp.CTE) if c.alias_or_name.lower() == name.lower()), None)
            if cte is not None:
                probe = exp.select("*").from_(exp.to_table(name))
                probe.set("with_", cte.parent.copy())
                names = [e.alias_or_name for e in qualify_statement(probe, catalog).expressions]
            else:
                names = columns_of(name, catalog)
        if names is None:
            raise CatalogError(f"unknown table: {name}")
        if alias is not None and alias.columns:
            names = [c.name for c in alias.columns] + names[len(alias.columns):]
        return names
    if isinstance(item, exp.Subquery):
        probe = exp.select("*").from_(item.copy())
        return [e.alias_or_name for e in qualify_statement(probe, catalog).expressions]
    raise NotSupportedError(f"USING next to a parenthesised join with the FROM item {item.sql('duckdb')[:60]}")


def _columns_or_none(item: exp.Expression, ast: exp.Expression, catalog) -> list[str] | None:
    """_item_columns, or None where they are not known before qualifying (a LATERAL subquery)."""
    try:
        return _item_columns(item, ast, catalog, {})
    except (NotSupportedError, CatalogError, OptimizeError):
        return None


def _unresolved(msg: str) -> bool:
    return "could not be resolved" in msg or "Unknown column" in msg or "Ambiguous" in msg


def _derived_tables_as_lateral(ast: exp.Expression) -> exp.Expression | None:
    """A copy of ast with every derived table after the first FROM item written LATERAL, None if it
    has none. DuckDB binds a derived table that reads the FROM items before it as a LATERAL join
    (sqlglot's qualify does not): tried when the query does not qualify as written. The binder
    joins such a subquery that reads nothing before it as the derived table it was."""
    out = ast.copy()
    found = False
    for join in list(out.find_all(exp.Join)):
        sub = join.this
        if not isinstance(sub, exp.Subquery) or isinstance(sub.this, exp.Table):  # `(a JOIN b ON …)`
            continue
        alias = sub.args.get("alias")
        inner = sub.copy()
        inner.set("alias", None)
        join.set("this", exp.Lateral(this=inner, view=False, outer=False, alias=alias.copy() if alias else None))
        found = True
    return out if found else None


def columns_of(name: str, catalog) -> list[str] | None:
    """The columns of a table or view of the catalog, None for another name."""
    key = name.lower()
    if key in catalog.views:
        return list(view_schema(key, catalog))
    if catalog.has_table(key):
        return list(catalog.table_schema(key).names)
    return None


def _resolve_table(table: exp.Table, catalog) -> None:
    """Names a table reference as the catalog does: `t` for schema main (`main.t`, `memory.main.t`),
    `s.t` for a table of schema s (written `s.t`, `memory.s.t`, or `t` when s comes first in the
    search path). The reference keeps its name as alias; columns qualified with the schema lose it."""
    catalog_part, db = table.args.get("catalog"), table.args.get("db")
    if catalog_part is not None and catalog_part.name.lower() != DATABASE:
        raise CatalogError(f"unknown table: {table.sql('duckdb')} (the database is {DATABASE})")
    schemas = getattr(catalog, "schemas", [SCHEMA])
    name = table.name.lower()
    if db is not None:
        schema = db.name.lower()
        if schema not in schemas:
            raise CatalogError(f"unknown table: {table.sql('duckdb')} (no schema {db.name})")
        candidates = [schema]
    else:
        candidates = list(getattr(catalog, "search_path", [SCHEMA]))
    internal = None
    for schema in candidates:
        candidate = name if schema == SCHEMA else f"{schema}.{name}"
        if catalog.has_table(candidate) or candidate in catalog.views:
            internal = candidate
            break
    if internal is None:
        internal = name if candidates[0] == SCHEMA else f"{candidates[0]}.{name}"
    table.set("catalog", None)
    table.set("db", None)
    if internal != name:
        if not table.alias:
            table.set("alias", exp.TableAlias(this=exp.to_identifier(table.name)))
        table.set("this", exp.to_identifier(internal, quoted=True))
    scope = table.parent_select
    if scope is None:
        return
    for column in scope.find_all(exp.Column):
        if column.args.get("db") is not None and column.table.lower() == (table.alias_or_name or "").lower():
            column.set("catalog", None)
            column.set("db", None)


def _check_order_keys(ast: exp.Expression) -> None:
    """Constant ORDER BY keys DuckDB refuses: a string or NULL ('has no effect'), a position below 1.

    Checked before sqlglot's qualify, which reads `ORDER BY 0` as the last column; and for
    aggregates' ORDER BY because we prune a CTE column nobody reads before DuckDB binds it."""
    for order in ast.find_all(exp.Order):
        if isinstance(order.parent, exp.Window):
            continue
        in_aggregate = order.args.get("this") is not None
        for key in order.expressions:
            e = key.this if isinstance(key, exp.Ordered) else key
            negative = isinstance(e, exp.Neg) and isinstance(e.this, exp.Literal) and not in_aggregate
            literal = e.this if negative else e
            if isinstance(literal, exp.Null) or (isinstance(literal, exp.Literal) and
                                                 (literal.is_string or not literal.this.isdigit())):
                raise CatalogError("ORDER BY non-integer literal has no effect")
            if not in_aggregate and isinstance(literal, exp.Literal) and (negative or int(literal.this) < 1):
                raise CatalogError(f"ORDER term out of range: {e.sql('duckdb')}")
    for group in ast.find_all(exp.Group):
        for e in group.expressions:
            if isinstance(e, exp.Neg) and isinstance(e.this, exp.Literal) and not e.this.is_string or (
                    isinstance(e, exp.Literal) and not e.is_string and e.this.isdigit() and int(e.this) < 1):
                raise CatalogError(f"GROUP BY term out of range: {e.sql('duckdb')}")


_GROUPINGS = (exp.GroupingSets, exp.Cube, exp.Rollup)


def _expand_grouping_positions(ast: exp.Expression) -> exp.Expression:
    """ast (a copy, when it changes) with each integer constant inside GROUPING SETS / ROLLUP / CUBE
    replaced by the select item it names, as DuckDB reads it (`GROUP BY CUBE (1, b)`); sqlglot's
    qualify expands positions of a plain GROUP BY only, so these were grouped as constants."""
    if not any(isinstance(e, _GROUPINGS) for g in ast.find_all(exp.Group) for e in g.expressions):
        return ast
    ast = ast.copy()
    for group in list(ast.find_all(exp.Group)):
        select = group.parent
        if not isinstance(select, exp.Select):
            continue
        items = select.expressions
        for unit in [u for e in group.expressions if isinstance(e, _GROUPINGS) for u in _grouping_units(e)]:
            negative = isinstance(unit, exp.Neg) and isinstance(unit.this, exp.Literal) and not unit.this.is_string
            if not negative and not (isinstance(unit, exp.Literal) and not unit.is_string and unit.this.isdigit()):
                continue
            if negative or not 1 <= int(unit.this) <= len(items):
                raise CatalogError(f"GROUP BY term out of range - should be between 1 and {len(items)}")
            item = items[int(unit.this) - 1]
            if isinstance(item, exp.Star) or any(isinstance(c.this, exp.Star) for c in item.find_all(exp.Column)):
                raise NotSupportedError("a position in GROUPING SETS / ROLLUP / CUBE beside SELECT *")
            value = item.this if isinstance(item, exp.Alias) else item
            if any(isinstance(n, exp.AggFunc) for n in value.walk()):
                raise CatalogError("GROUP BY clause cannot contain aggregates")
            unit.replace(value.copy())
    return ast


def _grouping_units_as_written(ast: exp.Expression) -> list[list[str]]:
    """Per GROUP BY with GROUPING SETS / ROLLUP / CUBE, its units as written, the plain keys beside
    them included (`GROUP BY k, CUBE (1)`): a position as `#n`, an expression as its text
    (identifiers folded to lower case, unquoted, as DuckDB folds them)."""
    out = []
    for group in ast.find_all(exp.Group):
        if not any(isinstance(e, _GROUPINGS) for e in group.expressions):
            continue
        units = [u for e in group.expressions
                 for u in (_grouping_units(e) if isinstance(e, _GROUPINGS) else [_unparenthesised(e)])]
        if units:
            out.append([f"#{u.this}" if isinstance(u, exp.Literal) and not u.is_string and u.this.isdigit()
                        else u.transform(_folded).sql("duckdb") for u in units])
    return out


def _folded(node: exp.Expression) -> exp.Expression:
    return exp.to_identifier(node.name.lower()) if isinstance(node, exp.Identifier) else node


def _check_grouping_spellings(spelled: list[list[str]], qualified: exp.Expression) -> None:
    """DuckDB tells grouping-set keys apart by how they are written: `GROUPING SETS ((t.k), (k))`,
    `ROLLUP (k, 1)` with k the first item, or two positions of one expression are two keys to it, and
    a select item reads one of them (NULL in the sets that group by the other). Here they are one
    key, so such a query is refused rather than answered otherwise."""
    resolved = _grouping_units_as_written(qualified)
    if [len(u) for u in resolved] != [len(u) for u in spelled]:
        return
    for written, bound in zip(spelled, resolved):
        first: dict[str, str] = {}
        for w, b in zip(written, bound):
            if first.setdefault(b, w) != w:
                raise NotSupportedError(f"a grouping key written two ways in GROUPING SETS / ROLLUP / CUBE "
                                        f"({first[b]}, {w})")


def _unparenthesised(e: exp.Expression) -> exp.Expression:
    while isinstance(e, exp.Paren):
        e = e.this
    return e


def _grouping_units(e: exp.Expression):
    """The expressions a GROUPING SETS / ROLLUP / CUBE groups by (inside composite units too)."""
    for x in e.expressions:
        x = _unparenthesised(x)
        if isinstance(x, _GROUPINGS):
            yield from _grouping_units(x)
        elif isinstance(x, exp.Tuple):
            yield from x.expressions
        else:
            yield x


_VIEW_SCHEMAS: dict = {}


def view_schema(name: str, catalog) -> dict:
    """Column names of a view (types are not needed for qualification)."""
    sql = catalog.views[name]
    key = (name, sql)
    if key not in _VIEW_SCHEMAS:
        inner = qualify_statement(parse(sql), catalog)
        sel = inner
        while isinstance(sel, (exp.Union, exp.Intersect, exp.Except)):
            sel = sel.this
        if isinstance(sel, exp.Subquery):
            sel = sel.this
        _VIEW_SCHEMAS[key] = {s.alias_or_name: "UNKNOWN" for s in sel.expressions}
    return _VIEW_SCHEMAS[key]


def _with_types(tree: exp.Expression, schema: dict) -> exp.Expression:
    """Every expression typed where sqlglot can tell (the binder makes join keys of different kinds
    comparable with it); an expression it cannot type stays unknown and is treated as such."""
    try:
        typed = annotate_types(tree, schema=schema, dialect="duckdb")
    except Exception:  # noqa: BLE001 - typing is best effort: unknown types take the safe path
        return tree
    # sqlglot types APPROX_QUANTILE as DOUBLE (other dialects' meaning) and then renders it for
    # DuckDB as CAST(… AS DOUBLE); DuckDB's own returns its argument's type (an integer, a date).
    for node in typed.find_all(exp.ApproxQuantile):
        node.type = node.this.type.copy() if node.this.type is not None else exp.DataType.build("UNKNOWN")
    return typed


def sql_data_type(t) -> exp.DataType:
    """The sqlglot type of an Arrow type: a copy of one parsed once per type name (parsing a type
    name costs as much as planning a small query's joins, and a scan of a wide table needs dozens)."""
    return _parsed_type(sql_type_name(t)).copy()


@functools.lru_cache(maxsize=256)
def _parsed_type(name: str) -> exp.DataType:
    return exp.DataType.build(name, dialect="duckdb")


def sql_type_name(t) -> str:
    """The SQL type name of an Arrow type, as the binder sees it."""
    import pyarrow as pa
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "VARCHAR"
    if pa.types.is_dictionary(t):
        return sql_type_name(t.value_type)
    if pa.types.is_integer(t):
        signed = {8: "TINYINT", 16: "SMALLINT", 32: "INT", 64: "BIGINT"}[t.bit_width]
        return signed if pa.types.is_signed_integer(t) else "U" + signed
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision},{t.scale})"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_float32(t):
        return "FLOAT"
    if pa.types.is_floating(t):
        return "DOUBLE"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    if pa.types.is_time(t):
        return "TIME"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "BLOB"
    # Nested and other types: unknown to the binder's key typing (the safe path).
    return "UNKNOWN"
    if pa.types.is_int64(t):
        return "BIGINT"
    if pa.types.is_int32(t):
        return "INT"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision},{t.scale})"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_floating(t):
        return "DOUBLE"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP"
    return "VARCHAR"
