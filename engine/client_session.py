"""A client's session: its settings and its transaction state, apart from every other client's.

The server keeps one per client connection (server/sessions.py). Settings a client may change are an
allow-list of DuckDB's connection-local settings whose effect FlockSQL honours on every rank:

  search_path / schema  where unqualified names are looked up (every table lives in memory.main);
  TimeZone              accepted when it names the server's own time zone (the ranks compute with
                        theirs: another zone would change answers silently, so it is refused).

and FlockSQL's own (not DuckDB's):

  flocksql_partitioned_results  true: queries answer with one endpoint per rank, each fetched
                        from its rank (server/part_server.py); false (the default): one endpoint
                        that holds every row.

Statements run in autocommit mode: each one is atomic and visible to every client once it returns.
BEGIN … COMMIT is accepted for clients that always send it; a ROLLBACK after statements that changed
data says which it cannot undo instead of pretending to.
"""
from __future__ import annotations

import re
import threading
import time
import uuid
from dataclasses import dataclass, field

from engine.errors import CatalogError, InvalidValueError, NotSupportedError, PlanError
from engine.leftovers import temp_tag

# name as clients write it (lower case) -> DuckDB's canonical name
SETTINGS = {"search_path": "search_path", "schema": "schema", "timezone": "TimeZone",
            "flocksql_partitioned_results": "flocksql_partitioned_results"}
# Settings of FlockSQL's own: the system catalog's DuckDB does not know them.
OWN_SETTINGS = {"flocksql_partitioned_results"}
_TRUE, _FALSE = {"1", "true", "on", "yes"}, {"0", "false", "off", "no"}
DEFAULT_SCHEMA = "main"
DATABASE = "memory"

_SET = re.compile(r"^\s*SET\s+(?:(SESSION|LOCAL|GLOBAL)\s+)?(?:VARIABLE\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*(?:=|\s+TO\s+|\s)\s*(.*?)\s*;?\s*$",
                  re.IGNORECASE | re.DOTALL)
_RESET = re.compile(r"^\s*RESET\s+(?:(SESSION|LOCAL|GLOBAL)\s+)?(ALL|[A-Za-z_][A-Za-z0-9_.]*)\s*;?\s*$", re.IGNORECASE)
_TRANSACTION = re.compile(r"^\s*(BEGIN|START|COMMIT|END|ROLLBACK|ABORT)(\s+(TRANSACTION|WORK))?\s*;?\s*$", re.IGNORECASE)


@dataclass
class ClientSession:
    """One client's state. `cursor` is its cursor on the system catalog (engine/system_catalog.py),
    made on first use; it holds the session's settings as DuckDB would."""

    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    settings: dict = field(default_factory=dict)  # canonical name -> value as given
    in_transaction: bool = False
    transaction_id: bytes | None = None  # the Flight SQL transaction of BeginTransaction, if open
    changed_in_transaction: list = field(default_factory=list)  # statements that wrote since BEGIN
    last_used: float = field(default_factory=time.monotonic)
    cursor: object = None
    temp: dict = field(default_factory=dict)  # temporary table name -> stored name (engine/temp_tables.py)
    temp_tag: str = field(default_factory=temp_tag)  # names this session's temporary tables
    temp_views: set = field(default_factory=set)  # stored names in `temp` that are views
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def close(self) -> None:
        if self.cursor is not None:
            self.cursor.close()
            self.cursor = None


def session_statement(sql: str):
    """('set', name, value) | ('reset', name) | ('transaction', verb) for a session statement, else None."""
    m = _TRANSACTION.match(sql)
    if m:
        verb = m.group(1).upper()
        return ("transaction", {"START": "BEGIN", "END": "COMMIT", "ABORT": "ROLLBACK"}.get(verb, verb))
    m = _RESET.match(sql)
    if m:
        return ("reset", m.group(1), m.group(2))
    m = _SET.match(sql)
    if m:
        return ("set", m.group(1), m.group(2), m.group(3))
    return None


def canonical_setting(name: str, scope: str | None) -> str:
    key = name.lower()
    if scope and scope.upper() == "GLOBAL":
        raise NotSupportedError(f"SET GLOBAL {name}: settings are per session; the server's are set at its start")
    if key not in SETTINGS:
        allowed = ", ".join(sorted(SETTINGS.values()))
        raise NotSupportedError(f"SET {name}: a client may set only {allowed}")
    return SETTINGS[key]


def unquote_value(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('""', '"')
    if not text:
        raise InvalidValueError("SET needs a value")
    return text


def check_own_setting(name: str, value: str) -> str:
    """The value of one of OWN_SETTINGS as stored (each is a boolean today)."""
    text = value.strip().lower()
    if text not in _TRUE | _FALSE:
        raise InvalidValueError(f"SET {name}: the value must be true or false, not {value!r}")
    return "true" if text in _TRUE else "false"


def partitioned_results(client: "ClientSession | None") -> bool | None:
    """The session's flocksql_partitioned_results, None where it did not set it."""
    value = None if client is None else client.settings.get("flocksql_partitioned_results")
    return None if value is None else value == "true"


def check_search_path(value: str, schemas: list[str]) -> None:
    """Every entry of a search path must name a schema that exists (DuckDB refuses others too)."""
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        parts = [p.strip().strip('"').lower() for p in entry.split(".")]
        if len(parts) == 2 and parts[0] not in (DATABASE, "system", "temp"):
            raise CatalogError(f"SET search_path: no catalog {parts[0]!r} (the database is {DATABASE})")
        if parts[-1] not in schemas and parts[-1] not in (DATABASE,):
            raise CatalogError(f"SET search_path: no schema {parts[-1]!r}")


def search_path(client: "ClientSession | None") -> list[str]:
    """The schemas an unqualified table name is looked up in, in order (main last if not named)."""
    text = "" if client is None else (client.settings.get("search_path") or client.settings.get("schema") or "")
    path = []
    for entry in (e.strip() for e in text.split(",")):
        if entry:
            schema = entry.split(".")[-1].strip().strip('"').lower()
            if schema not in path and schema != DATABASE:
                path.append(schema)
    if DEFAULT_SCHEMA not in path:
        path.append(DEFAULT_SCHEMA)
    return path


def transaction(client: ClientSession, verb: str) -> None:
    if verb == "BEGIN":
        if client.in_transaction:
            raise PlanError("cannot start a transaction within a transaction")
        client.in_transaction, client.changed_in_transaction = True, []
        return
    # COMMIT and ROLLBACK outside a transaction do nothing: connection pools (SQLAlchemy's) roll
    # back every connection they take back, whether or not it began one.
    if verb == "COMMIT":
        client.in_transaction, client.changed_in_transaction = False, []
        return
    # ROLLBACK
    changed = client.changed_in_transaction
    client.in_transaction, client.changed_in_transaction = False, []
    if changed:
        listed = "; ".join(changed[:5]) + ("; …" if len(changed) > 5 else "")
        raise NotSupportedError(f"ROLLBACK cannot undo {len(changed)} statement(s) that already changed data "
                                f"(each statement commits on its own): {listed}")
