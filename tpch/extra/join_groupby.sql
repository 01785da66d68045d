-- The strong-scaling query of issue 4: lineitem joined with orders on the order key, then grouped.
SELECT o_orderpriority, count(*) AS n, sum(l_extendedprice * (1 - l_discount)) AS revenue
FROM lineitem JOIN orders ON l_orderkey = o_orderkey
GROUP BY o_orderpriority
