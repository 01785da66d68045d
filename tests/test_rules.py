"""Fixture tests of the logical rewrite rules: a small plan in, the rewritten plan's shape out.

The answers these rewrites must keep are checked against DuckDB by tests/sql/*.test; here each
rule's own decisions (which join kind, where a filter lands, what it must leave alone).
"""
from __future__ import annotations

import re

import pytest
import sqlglot
from sqlglot import exp

from planner.logical import Filter, Join, Query, Scan, col, column_ids
from planner.rules.simplify_outer_joins import rejects_nulls, simplify_outer_joins

X = Scan("x", (("x_s", "s"), ("x_k", "k")))
Y = Scan("y", (("y_n", "n"), ("y_k", "k")))


def _pred(text: str) -> exp.Expression:
    # Column names in the fixtures are the plan's ids.
    return sqlglot.parse_one(text, read="duckdb").transform(
        lambda n: col(n.name) if isinstance(n, exp.Column) else n)


def _join(kind: str) -> Join:
    return Join(X, Y, kind, (col("x_k"),), (col("y_k"),))


def _simplified(node):
    return simplify_outer_joins(Query(node, ("a",))).root


def test_full_join_under_a_filter_on_the_left_becomes_left_and_the_filter_runs_first():
    out = _simplified(Filter(_join("full"), _pred("x_s <> 't'")))
    assert isinstance(out, Join) and out.kind == "left"
    assert isinstance(out.left, Filter) and out.left.input is X and out.right is Y


def test_full_join_filtered_on_both_sides_becomes_inner_with_both_filters_pushed():
    out = _simplified(Filter(_join("full"), _pred("x_s > 'a' AND y_n + 1 = 3")))
    assert isinstance(out, Join) and out.kind == "inner"
    assert isinstance(out.left, Filter) and isinstance(out.right, Filter)


def test_left_join_filtered_on_its_null_extended_side_becomes_inner():
    out = _simplified(Filter(_join("left"), _pred("y_n IS NOT NULL")))
    assert out.kind == "inner" and isinstance(out.right, Filter)


def test_right_join_filtered_on_the_left_becomes_inner():
    out = _simplified(Filter(_join("right"), _pred("x_k BETWEEN 1 AND 3")))
    assert out.kind == "inner"


def test_filters_that_keep_nulls_leave_the_join_alone():
    for text in ("y_n IS NULL", "coalesce(y_n, 0) = 0", "y_n = 1 OR x_s = 'a'", "NOT (y_n = 1)"):
        node = Filter(_join("left"), _pred(text))
        out = _simplified(node)
        assert isinstance(out, Filter) and out.input.kind == "left", text


def test_a_filter_on_the_preserved_side_of_a_left_join_changes_nothing():
    # x_s <> 't' rejects rows whose x columns are NULL, but a LEFT join never NULL-extends x.
    out = _simplified(Filter(_join("left"), _pred("x_s <> 't'")))
    assert isinstance(out, Filter) and out.input.kind == "left"


def test_rejects_nulls_is_certain_or_false():
    side = {"y_n"}
    assert rejects_nulls(_pred("y_n < 3"), side)
    assert rejects_nulls(_pred("CAST(y_n AS VARCHAR) LIKE 'a%'"), side)
    assert rejects_nulls(_pred("y_n IN (1, 2)"), side)
    assert not rejects_nulls(_pred("x_s < 3"), side)
    assert not rejects_nulls(_pred("y_n IS NOT DISTINCT FROM 3"), side)
    assert not rejects_nulls(_pred("coalesce(y_n, 1) < 3"), side)


# --- factor_or ---------------------------------------------------------------------------------

def _sqls(parts):
    return [p.sql("duckdb") for p in parts]


def test_factor_or_pulls_out_common_conjuncts_and_implies_one_table_filters():
    from planner.build import expr_key
    from planner.rules.factor_or import factor_or
    c = sqlglot.parse_one("(a.k = b.k AND a.x = 1 AND b.y = 2) OR (a.k = b.k AND a.x = 3 AND b.y = 4)", read="duckdb")
    out = _sqls(factor_or(c, expr_key))
    assert out[0] == "a.k = b.k"
    assert "(a.x = 1) OR (a.x = 3)" in out and "(b.y = 2) OR (b.y = 4)" in out
    assert out[-1] == "((a.x = 1) AND (b.y = 2)) OR ((a.x = 3) AND (b.y = 4))"


def test_factor_or_leaves_an_or_without_shared_parts_alone():
    from planner.build import expr_key
    from planner.rules.factor_or import factor_or
    c = sqlglot.parse_one("(a.x = 1 AND b.y = 2) OR b.y = 4", read="duckdb")
    # a appears in one branch only: no filter on a is implied; b is in both.
    assert _sqls(factor_or(c, expr_key)) == ["(b.y = 2) OR (b.y = 4)", "((a.x = 1) AND (b.y = 2)) OR (b.y = 4)"]
    plain = sqlglot.parse_one("a.x = 1 OR a.y = 2", read="duckdb")
    assert factor_or(plain, expr_key)[-1].sql("duckdb") in ("a.x = 1 OR a.y = 2", "(a.x = 1) OR (a.y = 2)")


def test_factor_or_drops_an_or_that_one_branch_makes_true():
    from planner.build import expr_key
    from planner.rules.factor_or import factor_or
    c = sqlglot.parse_one("(a.k = b.k) OR (a.k = b.k AND a.x = 1)", read="duckdb")
    assert _sqls(factor_or(c, expr_key)) == ["a.k = b.k"]


# --- narrowing an outer join by its tiny preserved side (planner/build.py: _reduced_by) --------

def test_a_right_join_with_an_empty_preserved_side_semi_joins_the_other_side_first(tmp_path):
    import duckdb

    from engine.session import Session
    from executors.comm import LocalComm
    con = duckdb.connect()
    con.execute(f"COPY (SELECT range AS id, range % 2 AS k FROM range(20000)) TO '{tmp_path}/big.parquet'")
    con.execute(f"COPY (SELECT 1::BIGINT AS id WHERE false) TO '{tmp_path}/empty.parquet'")
    with Session(str(tmp_path), comm=LocalComm()) as s:
        sql = ("SELECT count(*) AS n FROM big a JOIN big b ON a.k = b.k JOIN big c ON b.k = c.k "
               "RIGHT JOIN empty e ON c.id = e.id")
        plan = s.explain(sql)
        semi = [line for line in plan.splitlines() if "semi" in line]
        assert semi, plan
        # The semi join sits on a scan of big, under the inner joins, not above them.
        lines = plan.splitlines()
        below = [line for line in lines[lines.index(semi[0]) + 1:] if "Scan" in line][0]
        assert "Scan big" in below, plan
        assert s.execute(sql).column("n").to_pylist() == [0]


# --- quantified_subqueries, named_windows, qualify_clause (SQL-tree rules) ---------------------

def test_exists_as_a_value_counts_rows():
    from planner.rules.quantified_subqueries import rewrite_quantified
    e = sqlglot.parse_one("a.x = 1 OR EXISTS (SELECT 1 FROM t AS b WHERE b.k = a.k LIMIT 1)", read="duckdb")
    out = rewrite_quantified(e).sql("duckdb")
    assert "(SELECT COUNT(*) FROM t AS b WHERE b.k = a.k) > 0" in out and "LIMIT" not in out and "EXISTS" not in out


def test_in_and_all_follow_three_valued_logic():
    from planner.rules.quantified_subqueries import rewrite_quantified
    e = sqlglot.parse_one("a.x IN (SELECT b.y FROM t AS b)", read="duckdb")
    case = rewrite_quantified(e).unnest()
    assert isinstance(case, exp.Case)
    whens = [w.args["true"].sql() for w in case.args["ifs"]]
    assert whens == ["TRUE", "FALSE", "NULL"] and case.args["default"].sql() == "FALSE"
    # x > ALL (…) is NOT (x <= ANY (…)).
    e = sqlglot.parse_one("a.x > ALL (SELECT b.y FROM t AS b)", read="duckdb")
    out = rewrite_quantified(e)
    assert isinstance(out.unnest(), exp.Not) and "a.x <= b.y" in out.sql("duckdb")


def test_an_inner_table_of_the_outer_name_is_renamed_before_the_outer_value_moves_in():
    from planner.rules.quantified_subqueries import rewrite_quantified
    e = sqlglot.parse_one("p.price > ALL (SELECT p.price FROM p WHERE p.cat = 3)", read="duckdb")
    out = rewrite_quantified(e).sql("duckdb")
    assert "p.price <= __s" in out and "WHERE __s" in out, out


def test_named_windows_are_written_into_each_over():
    from planner.rules.named_windows import inline_named_windows
    q = sqlglot.parse_one("SELECT sum(x) OVER w, rank() OVER (w ORDER BY y) FROM t WINDOW w AS (PARTITION BY k)",
                          read="duckdb")
    out = inline_named_windows(q).sql("duckdb")
    assert "WINDOW" not in out
    assert "SUM(x) OVER (PARTITION BY k)" in out and "RANK() OVER (PARTITION BY k ORDER BY y" in out


def test_distinct_on_becomes_a_first_row_per_key_filter():
    from planner.rules.qualify_clause import rewrite_qualify
    q = sqlglot.parse_one("SELECT DISTINCT ON (t.k) t.k AS k, t.v AS v FROM t AS t ORDER BY k, t.v DESC", read="duckdb")
    out = rewrite_qualify(q).sql("duckdb")
    assert "ROW_NUMBER() OVER (PARTITION BY t.k ORDER BY t.k, t.v DESC) = 1 AS __qualify" in out
    assert out.endswith("WHERE __q.__qualify ORDER BY __q.__c0, __q.__o1 DESC"), out


# --- flatten_dependent_joins ------------------------------------------------------------------

def _flat(node):
    from planner.rules.flatten_dependent_joins import flatten_dependent_joins
    return flatten_dependent_joins(Query(node, tuple(node.columns))).root


def _nodes(node, kind):
    from planner.logical import walk
    return [n for n in walk(node) if isinstance(n, kind)]


def test_a_lateral_top_1_becomes_a_row_number_per_outer_value_joined_back_null_safely():
    from planner.logical import DependentJoin, Distinct, Limit, Sort, Window
    # X, LATERAL (SELECT * FROM y WHERE y_k = x_k ORDER BY y_n LIMIT 1)
    body = Limit(Sort(Filter(Y, _pred("y_k = x_k")), (exp.Ordered(this=col("y_n"), nulls_first=False),)), 1)
    out = _flat(DependentJoin(X, body, "inner", ("x_k",)))
    assert not _nodes(out, DependentJoin) and not _nodes(out, Limit)
    back = _nodes(out, Join)[0]
    assert back.left is X and back.kind == "inner"
    assert [k.sql("duckdb") for k in back.left_keys] == ['["x_k"]']  # [NULL] = [NULL]: IS NOT DISTINCT FROM
    (window,) = _nodes(out, Window)
    (_, rn), = window.funcs
    domain = back.right_keys[0].expressions[0].name
    assert rn.sql() == f'ROW_NUMBER() OVER (PARTITION BY "{domain}" ORDER BY "y_n" NULLS LAST)'
    # The correlation became the key of the join of y with the distinct outer values.
    inner = next(j for j in _nodes(out, Join) if j.left is Y)
    assert inner.kind == "inner" and [column_ids(k) for k in inner.left_keys] == [{"y_k"}]
    assert isinstance(inner.right, Distinct) and inner.right.input.input is X


def test_an_aggregate_without_group_by_keeps_one_row_per_outer_value_and_count_0():
    from planner.logical import Aggregate, DependentJoin, Project
    agg = Aggregate(Filter(Y, _pred("y_k < x_k")), (), (("n", exp.Count(this=exp.Star())), ("m", exp.Max(this=col("y_n")))))
    out = _flat(DependentJoin(X, agg, "left", ("x_k",)))
    grouped = _nodes(out, Aggregate)[-1]
    assert len(grouped.groups) == 1  # grouped by the outer value
    # The groups are left-joined to every outer value; a missing group's count reads 0.
    fix = next(p for p in _nodes(out, Project) if isinstance(dict(p.exprs).get("n"), exp.Coalesce))
    assert fix.input.kind == "left" and fix.input.right is grouped
    assert dict(fix.exprs)["n"].sql().startswith("COALESCE(") and dict(fix.exprs)["m"].sql() == '"m"'
    # A non-equality correlation stays a residual of the join with the outer values.
    assert any(j.residual is not None and "<" in j.residual.sql() for j in _nodes(out, Join))


def test_a_right_side_that_reads_no_outer_column_is_an_ordinary_join():
    from planner.logical import DependentJoin, Distinct
    out = _flat(DependentJoin(X, Filter(Y, _pred("y_n > 1")), "inner", ("x_k",), _pred("y_k = x_k")))
    assert isinstance(out, Join) and out.kind == "inner" and not _nodes(out, Distinct)
    assert [column_ids(k) for k in out.left_keys] == [{"x_k"}] and [column_ids(k) for k in out.right_keys] == [{"y_k"}]


def test_a_scalar_dependent_join_checks_one_row_per_outer_value_unless_limited():
    from planner.logical import DependentJoin, Limit, Window
    out = _flat(DependentJoin(X, Filter(Y, _pred("y_k = x_k")), "left", ("x_k",), scalar=True))
    assert any("error(" in f.predicate.sql().lower() for f in _nodes(out, Filter))
    limited = _flat(DependentJoin(X, Limit(Filter(Y, _pred("y_k = x_k")), 1), "left", ("x_k",), scalar=True))
    assert not any("error(" in f.predicate.sql().lower() for f in _nodes(limited, Filter))
    assert len(_nodes(limited, Window)) == 1


def test_exists_with_a_limit_is_a_semi_join_on_the_outer_value_null_matching_null():
    from planner.logical import DependentJoin, Limit
    # X WHERE EXISTS (SELECT * FROM y WHERE y_k = x_k LIMIT 1 OFFSET 2): a semi join of X with the
    # rows numbered per outer value, on [x_k] = [the outer value].
    out = _flat(DependentJoin(X, Limit(Filter(Y, _pred("y_k = x_k")), 1, 2), "semi", ("x_k",)))
    assert out.columns == X.columns and not _nodes(out, DependentJoin)
    back = _nodes(out, Join)[0]
    assert back.kind == "semi" and back.left is X
    assert [k.sql("duckdb") for k in back.left_keys] == ['["x_k"]']
    assert any(re.search(r'"row_number_\d+" > 2', f.predicate.sql()) for f in _nodes(out, Filter))


def test_not_in_keeps_its_condition_as_the_anti_joins_residual():
    from planner.logical import Aggregate, DependentJoin, Project
    # x_s NOT IN (SELECT max(y_n) FROM y WHERE y_k < x_k GROUP BY y_k)
    agg = Aggregate(Filter(Y, _pred("y_k < x_k")), (("g", col("y_k")),), (("m", exp.Max(this=col("y_n"))),))
    cond = _pred("NOT ((x_s = m) IS FALSE)")
    out = _flat(DependentJoin(X, Project(agg, (("m", col("m")),)), "anti", ("x_k",), cond))
    back = _nodes(out, Join)[0]
    assert back.kind == "anti" and len(back.left_keys) == 1 and "IS FALSE" in back.residual.sql()


def test_a_full_join_inside_gives_each_row_the_outer_value_of_its_own_side():
    from planner.logical import DependentJoin, Project
    Z = Scan("z", (("z_k", "k"),))
    body = Join(Filter(Y, _pred("y_n > x_k")), Z, "full", (col("y_k"),), (col("z_k"),))
    out = _flat(DependentJoin(X, body, "inner", ("x_k",)))
    full = next(j for j in _nodes(out, Join) if j.kind == "full")
    assert len(full.left_keys) == 2  # y_k = z_k and the outer value on both sides
    fix = next(p for p in _nodes(out, Project) if any(isinstance(e, exp.Coalesce) for _, e in p.exprs))
    assert fix.input is full


def test_a_chain_of_dependent_joins_reads_each_domain_from_the_first_left_side():
    from planner.logical import Aggregate, DependentJoin, Distinct
    count = Aggregate(Filter(Y, _pred("y_k = x_k")), (), (("n", exp.Count(this=exp.Star())),))
    first = DependentJoin(X, count, "left", ("x_k",), scalar=True)
    count2 = Aggregate(Filter(Y, _pred("y_n = x_k")), (), (("n2", exp.Count(this=exp.Star())),))
    out = _flat(DependentJoin(first, count2, "left", ("x_k",), scalar=True))
    # Every domain is the distinct x_k of X itself, not of the first join's result.
    assert all(d.input.input is X for d in _nodes(out, Distinct))


# ---------------------------------------------------------------------------- cte_filters
def _kept_cte_definition(sql: str, disabled=frozenset()):
    """The definition of the statement's (one) kept CTE after the rewrite rules."""
    from planner.build import Builder
    from planner.estimate import Estimator
    from planner.logical import MaterializedCte, walk
    from planner.qualify import parse, qualify_statement
    from planner.rules import run_rules
    from tests.test_cost_model import standard_catalog
    catalog = standard_catalog()
    ast = parse(sql)
    query = run_rules(Builder(catalog, Estimator(catalog)).build(qualify_statement(ast, catalog), original=ast),
                      disabled)
    kept = [n for n in walk(query.root) if isinstance(n, MaterializedCte)]
    assert len(kept) == 1, sql
    return kept[0].definition


def _filters_over_scans(node) -> dict[str, list[str]]:
    from planner.logical import Scan, walk
    out: dict[str, list[str]] = {}
    for n in walk(node):
        if isinstance(n, Filter):
            inner = n.input
            while isinstance(inner, Filter):
                inner = inner.input
            if isinstance(inner, Scan):
                out.setdefault(inner.table, []).append(n.predicate.sql("duckdb"))
    return out


KEYED = ("WITH m AS (SELECT g10, g1k, sum(v) AS s FROM big GROUP BY g10, g1k) "
         "SELECT a.g1k, a.s, b.s FROM m a JOIN m b ON a.g1k = b.g1k WHERE {}")


def test_reader_filters_on_a_group_key_reach_the_scan_as_one_or():
    d = _kept_cte_definition(KEYED.format("a.g10 = 1 AND b.g10 = 2"))
    below = _filters_over_scans(d).get("big", [])
    assert any(" OR " in p and "= 1" in p and "= 2" in p for p in below), below
    untouched = _kept_cte_definition(KEYED.format("a.g10 = 1 AND b.g10 = 2"),
                                     frozenset({"push_reader_filters_into_ctes"}))
    assert _filters_over_scans(untouched) == {}


def test_a_conjunct_on_an_aggregate_value_stays_above_and_the_rest_goes_down():
    d = _kept_cte_definition(KEYED.format("a.g10 = 1 AND a.s > 5 AND b.g10 = 2"))
    assert isinstance(d, Filter) and "> 5" in d.predicate.sql("duckdb")
    below = _filters_over_scans(d).get("big", [])
    assert below and all("> 5" not in p for p in below), below


def test_a_reader_without_a_filter_keeps_the_definition_whole():
    d = _kept_cte_definition(KEYED.format("a.g10 = 1"))
    assert not isinstance(d, Filter) and _filters_over_scans(d) == {}


def test_a_conjunct_that_could_raise_is_not_pushed():
    d = _kept_cte_definition(KEYED.format("a.g10 = 1 AND CAST(b.g10 AS VARCHAR) = '2'"))
    assert _filters_over_scans(d) == {} and not isinstance(d, Filter)


def test_a_union_branch_whose_tag_no_reader_names_is_filtered_out_whole():
    d = _kept_cte_definition(
        "WITH t AS (SELECT g10, 's' AS kind, sum(v) AS s FROM big GROUP BY g10 "
        "UNION ALL SELECT w AS g10, 'c' AS kind, count(*) AS s FROM mid GROUP BY w) "
        "SELECT a.g10, a.s, b.s FROM t a JOIN t b ON a.g10 = b.g10 WHERE a.kind = 's' AND b.kind = 's' "
        "AND a.g10 = 3 AND b.g10 = 4")
    scans = _filters_over_scans(d)
    assert scans["mid"] == ["FALSE"], scans
    assert any("= 3" in p and "= 4" in p for p in scans["big"]), scans


# ---------------------------------------------------------------------------- push_filters, transitive_filters
def _rewritten(sql: str, disabled=frozenset()):
    from planner.build import Builder
    from planner.estimate import Estimator
    from planner.qualify import parse, qualify_statement
    from planner.rules import run_rules
    from tests.test_cost_model import standard_catalog
    catalog = standard_catalog()
    ast = parse(sql)
    return run_rules(Builder(catalog, Estimator(catalog)).build(qualify_statement(ast, catalog), original=ast),
                     disabled).root


GROUPED = "(SELECT g10, g1k, sum(v) AS s FROM big GROUP BY g10, g1k)"


def test_a_filter_on_a_derived_tables_group_key_moves_under_its_aggregate():
    root = _rewritten(f"SELECT * FROM {GROUPED} t WHERE t.g10 = 3 AND t.s > 5")
    assert any("= 3" in p for p in _filters_over_scans(root).get("big", [])), _filters_over_scans(root)
    kept = _rewritten(f"SELECT * FROM {GROUPED} t WHERE t.g10 = 3 AND t.s > 5", frozenset({"push_filters"}))
    assert _filters_over_scans(kept) == {}


def test_a_filter_that_could_raise_stays_above_the_aggregate():
    root = _rewritten(f"SELECT * FROM {GROUPED} t WHERE CAST(t.g10 AS VARCHAR) = '3'")
    assert _filters_over_scans(root) == {}


def test_a_key_filter_crosses_a_left_join_to_the_null_extended_side_only():
    sql = (f"SELECT a.g1k, b.s FROM {GROUPED} a LEFT JOIN (SELECT g10, g1k, count(*) AS s FROM mid "
           "JOIN big USING (k) GROUP BY g10, g1k) b ON a.g10 = b.g10 AND a.g1k = b.g1k WHERE a.g10 = 4")
    root = _rewritten(sql)
    below = [p for ps in _filters_over_scans(root).values() for p in ps]
    assert sum("= 4" in p for p in below) == 2, below    # on both sides
    no_transfer = _rewritten(sql, frozenset({"transitive_filters"}))
    assert sum("= 4" in p for ps in _filters_over_scans(no_transfer).values() for p in ps) == 1
    # A filter on the NULL-extended side's key says nothing of the preserved side's rows.
    root = _rewritten(f"SELECT a.g1k FROM {GROUPED} a LEFT JOIN {GROUPED} b ON a.g10 = b.g10 "
                      "AND b.g10 = 4")
    below = [p for ps in _filters_over_scans(root).values() for p in ps]
    assert sum("= 4" in p for p in below) == 1, below


# ---------------------------------------------------------------------------- eager_aggregation
def _eager(sql: str):
    from planner.build import Builder
    from planner.estimate import Estimator
    from planner.qualify import parse, qualify_statement
    from planner.rules import run_rules
    from tests.test_cost_model import standard_catalog
    catalog = standard_catalog()
    est = Estimator(catalog)
    ast = parse(sql)
    return run_rules(Builder(catalog, est).build(qualify_statement(ast, catalog), original=ast), estimator=est).root


def _local_aggregates(root):
    from planner.logical import Aggregate, walk
    return [n for n in walk(root) if isinstance(n, Aggregate) and n.local]


def test_a_table_that_only_gives_group_keys_is_joined_after_a_local_pre_aggregation():
    # tiny's 25 names per big row: big is summed by its key into tiny (25 groups) before the join.
    root = _eager("SELECT tiny.name, sum(big.v) AS s, count(*) AS n FROM big JOIN tiny ON big.t = tiny.t GROUP BY tiny.name")
    local, = _local_aggregates(root)
    from planner.logical import Join, Scan, walk
    assert [n.table for n in walk(local) if isinstance(n, Scan)] == ["big"]
    join, = [n for n in walk(root) if isinstance(n, Join)]
    assert local in join.children


def test_no_pre_aggregation_where_the_table_is_filtered_read_by_an_aggregate_or_few_rows_merge():
    filtered = "SELECT tiny.name, sum(big.v) FROM big JOIN tiny ON big.t = tiny.t WHERE tiny.name <> 'x' GROUP BY tiny.name"
    read = "SELECT tiny.name, sum(big.v + tiny.t) FROM big JOIN tiny ON big.t = tiny.t GROUP BY tiny.name"
    distinct = "SELECT tiny.name, count(DISTINCT big.v) FROM big JOIN tiny ON big.t = tiny.t GROUP BY tiny.name"
    # big.u is unique: grouping by it first would keep every row.
    unique = "SELECT mid.w, big.u, sum(big.v) FROM big JOIN mid ON big.k = mid.k GROUP BY mid.w, big.u"
    for sql in (filtered, read, distinct, unique):
        assert _local_aggregates(_eager(sql)) == [], sql


# ---------------------------------------------------------------------------- inner_to_semi_joins
def _join_kinds(root):
    from planner.logical import Join, walk
    return sorted(n.kind for n in walk(root) if isinstance(n, Join))


def test_an_inner_join_under_in_that_only_filters_becomes_a_semi_join():
    root = _rewritten("SELECT big.u FROM big WHERE big.k IN (SELECT mid.k FROM mid JOIN tiny ON mid.w = tiny.t)")
    assert _join_kinds(root) == ["semi", "semi"]
    kept = _rewritten("SELECT big.u FROM big WHERE big.k IN (SELECT mid.k FROM mid JOIN tiny ON mid.w = tiny.t)",
                      frozenset({"inner_to_semi_joins"}))
    assert _join_kinds(kept) == ["inner", "semi"]


def test_an_inner_join_whose_rows_are_counted_or_read_stays():
    counted = _rewritten("SELECT count(*) FROM mid JOIN tiny ON mid.w = tiny.t")
    read = _rewritten("SELECT big.u FROM big WHERE big.k IN (SELECT mid.k + tiny.t FROM mid JOIN tiny ON mid.w = tiny.t)")
    distinct_counted = _rewritten("SELECT count(*) FROM (SELECT DISTINCT mid.w, tiny.name FROM mid JOIN tiny ON mid.w = tiny.t) x")
    assert _join_kinds(counted) == ["inner"]
    assert _join_kinds(read) == ["inner", "semi"]
    assert _join_kinds(distinct_counted) == ["inner"]


# ---------------------------------------------------------------------------- distinct_aggregates
def test_a_global_distinct_aggregate_is_grouped_by_its_argument_first():
    from sqlglot import exp

    from planner.logical import Aggregate, walk
    root = _rewritten("SELECT count(DISTINCT v) AS d, sum(g10) AS s FROM big")
    aggregates = [n for n in walk(root) if isinstance(n, Aggregate)]
    assert sorted(len(n.groups) for n in aggregates) == [0, 1]
    assert not any(isinstance(x, exp.Distinct) for n in aggregates for _, a in n.aggs for x in a.walk())
    two = _rewritten("SELECT count(DISTINCT v) AS d, count(DISTINCT g10) AS e FROM big")
    assert [len(n.groups) for n in walk(two) if isinstance(n, Aggregate)] == [0]


def test_factor_or_keeps_an_or_over_one_table_once():
    from planner.build import expr_key
    from planner.rules.factor_or import factor_or
    c = sqlglot.parse_one("(a.x BETWEEN 1 AND 3 AND a.q = 1) OR (a.y BETWEEN 2 AND 4 AND a.q = 2)", read="duckdb")
    assert len(factor_or(c, expr_key)) == 1


# ---------------------------------------------------------------------------- cte_partition_keys
def _kept_aggregates(sql: str, disabled=frozenset()):
    from planner.logical import Aggregate, MaterializedCte, walk
    root = _rewritten(sql, disabled)
    return [a for m in walk(root) if isinstance(m, MaterializedCte)
            for a in walk(m.definition) if isinstance(a, Aggregate)]


CTE_JOINED = ("WITH c AS (SELECT g1k, g100k, sum(v) AS s FROM big GROUP BY g1k, g100k) ")


def test_a_kept_aggregate_joined_on_some_group_keys_is_partitioned_on_them():
    sql = CTE_JOINED + ("SELECT x.g1k, x.s, y.s, z.s FROM c x JOIN c y ON x.g1k = y.g1k JOIN c z ON y.g1k = z.g1k "
                        "WHERE x.g100k = 1 AND y.g100k = 2 AND z.g100k = 3")
    [agg] = _kept_aggregates(sql)
    assert [dict(agg.groups)[g].name.split("_")[0] for g in agg.partition_on] == ["g1k"]
    [agg] = _kept_aggregates(sql, frozenset({"cte_partition_keys"}))
    assert agg.partition_on == ()


@pytest.mark.parametrize("sql", [
    # The readers join on different keys: none is common to every join.
    CTE_JOINED + "SELECT x.s, y.s, z.s FROM c x JOIN c y ON x.g1k = y.g1k JOIN c z ON y.g100k = z.g100k",
    # On every group key: partitioned on all of them already.
    CTE_JOINED + "SELECT x.s, y.s FROM c x JOIN c y ON x.g1k = y.g1k AND x.g100k = y.g100k",
    # On an aggregate's value, not a group key.
    CTE_JOINED + "SELECT x.s, y.s FROM c x JOIN c y ON x.s = y.s",
])
def test_kept_aggregates_that_keep_their_partitioning(sql):
    [agg] = _kept_aggregates(sql)
    assert agg.partition_on == ()
