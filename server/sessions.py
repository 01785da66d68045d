"""Which client session a Flight call belongs to, and the Flight session-option actions.

Flight SQL has no connection handshake that every client makes, so a session is found by, in order:
the `arrow_flight_session_id` cookie (Flight's session convention: clients with cookie middleware
send back what SetSessionOptions/GetSessionOptions set), else the call's gRPC peer address — one
ADBC connection is one gRPC channel, whose address stays the same for the connection's life. A
session idle for SESSION_IDLE_S is closed (its settings go; nothing else depends on it).

The session options are those of ADBC's Flight SQL driver: `catalog` (always `memory`) and `schema`
(the session's search path), plus the settings a client may SET (engine/client_session.py).
"""
from __future__ import annotations

import threading
import time

import pyarrow.flight as flight

from engine import client_session as cs
from engine.client_session import ClientSession
from server import wire
from server.auth import _header

COOKIE = "arrow_flight_session_id"
SESSION_IDLE_S = 3600.0
MIDDLEWARE_KEY = "flocksql-session-cookie"


class SessionCookie(flight.ServerMiddleware):
    """Sends the session cookie back on calls that asked for session options."""

    def __init__(self, cookie: str | None):
        super().__init__()
        self.cookie = cookie
        self.assign: str | None = None

    def sending_headers(self):
        if self.assign is not None and self.assign != self.cookie:
            return {"set-cookie": f"{COOKIE}={self.assign}"}
        return {}


class SessionCookieFactory(flight.ServerMiddlewareFactory):
    def start_call(self, info, headers):
        raw = _header(headers, "cookie")
        cookie = None
        if raw:
            for part in raw.split(";"):
                name, _, value = part.strip().partition("=")
                if name == COOKIE and value:
                    cookie = value
        return SessionCookie(cookie)


class Sessions:
    """The client sessions of one server."""

    def __init__(self, on_close=lambda client: client.close()):
        self._by_key: dict[str, ClientSession] = {}
        self._lock = threading.Lock()
        self._on_close = on_close  # called with each session that closes or expires

    def of(self, context) -> ClientSession:
        """The session of this call, made on its first call."""
        key = self._key(context)
        now = time.monotonic()
        with self._lock:
            expired = [self._by_key.pop(k) for k, s in list(self._by_key.items()) if now - s.last_used > SESSION_IDLE_S]
            session = self._by_key.get(key)
            if session is None:
                session = self._by_key[key] = ClientSession(id=key)
            session.last_used = now
        for gone in expired:
            self._on_close(gone)
        cookie = _cookie_middleware(context)
        if cookie is not None and cookie.cookie is None:
            cookie.assign = session.id
        return session

    def close(self, context) -> bool:
        key = self._key(context)
        with self._lock:
            session = self._by_key.pop(key, None)
        if session is not None:
            self._on_close(session)
        return session is not None

    def __len__(self) -> int:
        return len(self._by_key)

    @staticmethod
    def _key(context) -> str:
        cookie = _cookie_middleware(context)
        if cookie is not None and cookie.cookie:
            return cookie.cookie
        return f"peer:{context.peer()}"


def _cookie_middleware(context) -> SessionCookie | None:
    try:
        return context.get_middleware(MIDDLEWARE_KEY)
    except Exception:  # noqa: BLE001 - a context without middleware support
        return None


# --- the actions' messages (Flight.proto; map fields are repeated key/value entries) --------------

def _entry(key: str, value: bytes) -> bytes:
    return wire._length_delimited(1, key.encode()) + wire._length_delimited(2, value)


def _string_value(text: str) -> bytes:
    return wire._length_delimited(1, text.encode())  # SessionOptionValue.string_value


def _decode_option_value(raw: bytes):
    """A SessionOptionValue as a Python value (string, bool, int, float, list of strings, or None)."""
    import struct
    fields = wire.parse_fields(raw)
    if 1 in fields:
        return fields[1][-1].decode()
    if 2 in fields:
        return bool(fields[2][-1])
    if 3 in fields:  # sfixed64, which parse_fields reads unsigned
        value = fields[3][-1]
        return value - (1 << 64) if value >= 1 << 63 else value
    if 4 in fields:  # double
        return struct.unpack("<d", fields[4][-1].to_bytes(8, "little"))[0]
    if 5 in fields:
        inner = wire.parse_fields(fields[5][-1])
        return [v.decode() for v in inner.get(1, [])]
    return None


def decode_set_request(body: bytes) -> dict:
    out = {}
    for entry in wire.parse_fields(body).get(1, []):
        parts = wire.parse_fields(entry)
        key = parts.get(1, [b""])[-1].decode()
        out[key] = _decode_option_value(parts.get(2, [b""])[-1])
    return out


# SetSessionOptionsResult.ErrorValue
INVALID_NAME, INVALID_VALUE, ERROR = 1, 2, 3


def encode_set_result(errors: dict[str, int]) -> bytes:
    out = bytearray()
    for key, code in errors.items():
        error = wire.encode_varint(1 << 3) + wire.encode_varint(code)  # Error.value
        out += wire._length_delimited(1, _entry(key, error))
    return bytes(out)


def encode_get_result(options: dict[str, str]) -> bytes:
    out = bytearray()
    for key, value in options.items():
        out += wire._length_delimited(1, _entry(key, _string_value(value)))
    return bytes(out)


def encode_close_result(closed: bool) -> bytes:
    return wire.encode_varint(1 << 3) + wire.encode_varint(1 if closed else 3)  # CLOSED | NOT_CLOSEABLE


def options_of(client: ClientSession) -> dict[str, str]:
    """GetSessionOptions: the current catalog and schema, and every setting the session changed."""
    path = client.settings.get("search_path") or client.settings.get("schema") or cs.DEFAULT_SCHEMA
    schema = path.split(",")[0].strip().split(".")[-1].strip('"') or cs.DEFAULT_SCHEMA
    options = {"catalog": cs.DATABASE, "schema": schema}
    options.update({k: v for k, v in client.settings.items() if k not in ("search_path", "schema")})
    return options


def setting_statement(name: str, value) -> str | None:
    """The SQL that a session option means (catalog and schema are ADBC's names), or None to ignore."""
    if name == "catalog":
        if str(value).lower() != cs.DATABASE:
            raise ValueError(f"catalog {value!r}: the one catalog is {cs.DATABASE}")
        return None
    key = "search_path" if name == "schema" else name
    if value is None or value == "":
        return f"RESET {key}"
    return f"SET {key} = '" + str(value).replace("'", "''") + "'"
