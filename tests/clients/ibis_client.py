"""Ibis (ibis-gizmosql), unmodified, against a FlockSQL server: prints what it saw as JSON.

Run by tests/test_clients.py in the client environment: python ibis_client.py HOST PORT
"""
import json
import sys

import ibis

host, port = sys.argv[1], sys.argv[2]
con = ibis.connect(f"gizmosql://{host}:{port}?useEncryption=False")
nation, region = con.table("nation"), con.table("region")
joined = (nation.join(region, nation.n_regionkey == region.r_regionkey)
          .group_by("r_name").agg(nations=nation.n_nationkey.count(), top=nation.n_name.max()).order_by("r_name"))
con.create_table("ibis_made", ibis.memtable({"a": [1, 2, 3], "b": ["x", "y", None]}))
print(json.dumps({
    "tables": con.list_tables(),
    "nation_columns": list(nation.schema().names),
    "joined": joined.to_pandas().to_dict(orient="records"),
    "made": con.table("ibis_made").order_by("a").to_pandas().astype(object).where(lambda d: d.notna(), None)
    .to_dict(orient="records"),
}))
