"""SQLFrame (sqlframe-gizmosql, the PySpark DataFrame API), unmodified: prints what it saw as JSON."""
import json
import sys

from adbc_driver_gizmosql import dbapi as gizmosql
from sqlframe_gizmosql import GizmoSQLSession
from sqlframe_gizmosql import functions as F

host, port = sys.argv[1], sys.argv[2]
session = GizmoSQLSession(conn=gizmosql.connect(f"grpc://{host}:{port}"))
grouped = (session.table("orders").groupBy("o_orderstatus")
           .agg(F.count("*").alias("n"), F.sum("o_totalprice").alias("total")).orderBy("o_orderstatus"))
session.createDataFrame([(1, "a"), (2, "b")], ["x", "y"]).write.saveAsTable("sqlframe_made", mode="overwrite")
print(json.dumps({
    "grouped": [[r["o_orderstatus"], r["n"], float(r["total"])] for r in grouped.collect()],
    "made": [[r["x"], r["y"]] for r in session.table("sqlframe_made").orderBy("x").collect()],
}))
