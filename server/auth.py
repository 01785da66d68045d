"""Password authentication: Flight basic-auth handshake, then bearer tokens, as ADBC clients expect.

A client sends `authorization: Basic base64(user:password)` on its Handshake call; the reply carries
`authorization: Bearer <token>`, and every later call must send that header. Any call without a valid
header fails with UNAUTHENTICATED. The checks live in a server middleware so that they cover every
RPC, the handshake included.

A token is its expiry time and a nonce, signed with a key derived from the user and password, so
every server that knows them accepts it with no shared state: the ranks' own part servers
(server/part_server.py), to which clients bring the token rank 0 gave them, and a flock restarted
by its supervisor, whose clients keep their tokens.

Settings:
  TOKEN_TTL_S: how long an issued bearer token stays valid, in seconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
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
        self._key = hashlib.sha256(b"flocksql bearer token\0" + self._user + b"\0" + self._password).digest()

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

    def _signature(self, claim: str) -> str:
        return hmac.new(self._key, claim.encode(), hashlib.sha256).hexdigest()

    def _issue(self) -> str:
        # Wall-clock expiry: the token travels to other processes (time.monotonic is per boot).
        claim = f"{int(time.time() + self._token_ttl_s)}.{secrets.token_urlsafe(16)}"
        return f"{claim}.{self._signature(claim)}"

    def _valid(self, token: str) -> bool:
        claim, _, signature = token.rpartition(".")
        expiry = claim.partition(".")[0]
        if not expiry.isdigit() or not hmac.compare_digest(signature, self._signature(claim)):
            return False
        return int(expiry) > time.time()


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
