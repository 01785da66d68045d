"""Password authentication: Flight basic-auth handshake, then bearer tokens, as ADBC clients expect.

A client sends `authorization: Basic base64(user:password)` on its Handshake call; the reply carries
`authorization: Bearer <token>`, and every later call must send that header. Any call without a valid
header fails with UNAUTHENTICATED. The checks live in a server middleware so that they cover every
RPC, the handshake included.

Settings:
  TOKEN_TTL_S: how long an issued bearer token stays valid, in seconds.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import threading
import time

import pyarrow.flight as flight

TOKEN_TTL_S = 24 * 3600.0


class NoOpAuthHandler(flight.ServerAuthHandler):
    """Lets the Handshake RPC succeed (pyarrow answers UNIMPLEMENTED without a handler).

    The real checks are in `PasswordAuthMiddlewareFactory`, which runs before this handler.
    """

    def authenticate(self, outgoing, incoming):
        pass

    def is_valid(self, token):
        return b""


class PasswordAuthMiddlewareFactory(flight.ServerMiddlewareFactory):
    def __init__(self, user: str, password: str, token_ttl_s: float = TOKEN_TTL_S):
        super().__init__()
        self._user = user.encode()
        self._password = password.encode()
        self._token_ttl_s = token_ttl_s
        self._tokens: dict[str, float] = {}  # token -> expiry (time.monotonic)
        self._lock = threading.Lock()

    def start_call(self, info, headers):
        values = _header(headers, "authorization")
        if values is None:
            raise flight.FlightUnauthenticatedError("authentication required: no authorization header")
        scheme, _, credentials = values.partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            try:
                encoded = credentials.strip()
                encoded += "=" * (-len(encoded) % 4)  # the Go driver leaves the padding out
                user, sep, password = base64.b64decode(encoded, validate=True).partition(b":")
            except ValueError:
                sep = b""
            if not sep or not (
                hmac.compare_digest(user, self._user) & hmac.compare_digest(password, self._password)
            ):
                raise flight.FlightUnauthenticatedError("invalid user name or password")
            return _IssueToken(self._issue())
        if scheme == "bearer":
            if not self._valid(credentials.strip()):
                raise flight.FlightUnauthenticatedError("invalid or expired bearer token")
            return None
        raise flight.FlightUnauthenticatedError(f"unsupported authorization scheme {scheme!r}")

    def _issue(self) -> str:
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
            self._tokens[token] = now + self._token_ttl_s
        return token

    def _valid(self, token: str) -> bool:
        with self._lock:
            expiry = self._tokens.get(token)
        return expiry is not None and expiry > time.monotonic()


class _IssueToken(flight.ServerMiddleware):
    def __init__(self, token: str):
        super().__init__()
        self.token = token

    def sending_headers(self):
        return {"authorization": f"Bearer {self.token}"}


def _header(headers: dict, name: str) -> str | None:
    for key, values in headers.items():
        if key.lower() == name and values:
            value = values[0]
            return value.decode("latin-1") if isinstance(value, bytes) else value
    return None
