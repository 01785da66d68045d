"""The GizmoSQL ADBC driver, unmodified: session options, a query, a parameter, bulk ingest."""
import json
import sys

import pyarrow as pa

from adbc_driver_gizmosql import dbapi as gizmosql

host, port = sys.argv[1], sys.argv[2]
with gizmosql.connect(f"grpc://{host}:{port}") as conn, conn.cursor() as cur:
    cur.execute("SELECT o_orderpriority, count(*) AS n FROM orders WHERE o_totalprice > ? GROUP BY 1 ORDER BY 1",
                parameters=[100000])
    rows = cur.fetchall()
    info = conn.adbc_get_info()
    catalog, schema = conn.adbc_current_catalog, conn.adbc_current_db_schema
    cur.execute("SET TimeZone = 'UTC'")
    cur.execute("SELECT current_setting('TimeZone')")
    zone = cur.fetchone()[0]
    ingested = cur.adbc_ingest("gizmo_ingested", pa.table({"a": [1, 2, 3], "b": ["x", None, "z"]}), mode="create")
    cur.execute("SELECT count(*), sum(a), count(b) FROM gizmo_ingested")
    ingested_back = [int(v) for v in cur.fetchone()]
print(json.dumps({"rows": [list(r) for r in rows], "vendor_version": info["vendor_version"], "catalog": catalog,
                  "schema": schema, "zone": zone, "ingested": ingested, "ingested_back": ingested_back}))
