"""SQLAlchemy (sqlalchemy-gizmosql-adbc-dialect) and pandas, unmodified: prints what they saw as JSON."""
import json
import sys

import pandas as pd
import sqlalchemy as sa

host, port = sys.argv[1], sys.argv[2]
engine = sa.create_engine(f"gizmosql://{host}:{port}?useEncryption=False")
inspector = sa.inspect(engine)
nation = sa.Table("nation", sa.MetaData(), autoload_with=engine)
with engine.connect() as c:
    picked = c.execute(sa.select(nation.c.n_name).where(nation.c.n_nationkey == sa.bindparam("k")), {"k": 7}).fetchall()
region = pd.read_sql_table("region", engine)
pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]}).to_sql("pandas_made", engine, index=False, if_exists="replace")
made = pd.read_sql(sa.text("SELECT x, y FROM pandas_made ORDER BY x"), engine)
print(json.dumps({
    "tables": inspector.get_table_names(),
    "has_nation": inspector.has_table("nation"),
    "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns("nation")],
    "picked": [list(r) for r in picked],
    "region_rows": len(region),
    "region_columns": list(region.columns),
    "made": made.to_dict(orient="records"),
}))
