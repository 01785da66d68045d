"""The one place where errors become Flight status codes.

Engine errors (engine/errors.py) and the server's own request errors are mapped here, keeping the
message and prefixing the error's kind:

    ParseError, CatalogError, PlanError, NotSupportedError, InvalidValueError,
    ConstraintError, RequestError                                     -> INVALID_ARGUMENT
    CancelledError                                                      -> CANCELLED
    UnsupportedRequest                                                  -> UNIMPLEMENTED
    ShuttingDown, RankLostError (a rank died: the flock restarts)      -> UNAVAILABLE
    (authentication failures are raised as UNAUTHENTICATED by server/auth.py)
    ExecutionError, CommError, InternalError, any other exception       -> INTERNAL

pyarrow has no Flight exception class for INVALID_ARGUMENT; it maps `pyarrow.ArrowInvalid` to it,
and then appends the Python traceback of the raise to the message as "Detail: Python exception: ...".
It formats that traceback with `traceback.format_exception` and, when formatting fails, names only
the exception's class; `_Untraced` makes it fail (its `__notes__` cannot be read), so clients get
"<message>. Detail: Python exception: InvalidArgument" and never a server-side traceback.
`client_message` strips the detail for people reading errors in the shell.
"""

from __future__ import annotations

import functools
import logging
import re

import pyarrow as pa
import pyarrow.flight as flight

from engine.leftovers import TEMP_MARK
from engine.errors import (
    CancelledError,
    CatalogError,
    ConstraintError,
    FlockError,
    InvalidValueError,
    NotSupportedError,
    ParseError,
    PlanError,
    RankLostError,
)

log = logging.getLogger("flocksql.server")
TEMP_SUFFIX = re.compile(rf"{TEMP_MARK}[0-9a-f]+")


class RequestError(Exception):
    """A malformed or unknown Flight SQL request: bad command bytes, an unknown handle or ticket."""


class UnsupportedRequest(Exception):
    """A Flight SQL feature this server does not implement (transactions, Substrait, ingest)."""


class ShuttingDown(Exception):
    """The server is stopping and no longer runs queries."""


_INVALID_ARGUMENT = (ParseError, CatalogError, PlanError, NotSupportedError, InvalidValueError, ConstraintError)


class _Untraced:
    """Mixin: pyarrow cannot format a traceback of this exception, so it sends only the class name."""

    @property
    def __notes__(self):
        raise TypeError("no server-side traceback for clients")


class InvalidArgument(_Untraced, pa.ArrowInvalid):
    """INVALID_ARGUMENT with the message only."""


class Unimplemented(_Untraced, NotImplementedError):
    """UNIMPLEMENTED with the message only."""


def to_flight_error(exc: BaseException) -> Exception:
    """The exception to raise to a Flight client for `exc`; see the table in the module docstring."""
    if isinstance(exc, (flight.FlightError, _Untraced)):
        return exc
    text = TEMP_SUFFIX.sub("", str(exc))  # a temp table by the name its session knows
    if isinstance(exc, pa.ArrowInvalid):
        return InvalidArgument(text)
    if isinstance(exc, NotImplementedError):
        return Unimplemented(text)
    if isinstance(exc, _INVALID_ARGUMENT):
        return InvalidArgument(f"{type(exc).__name__}: {text}")
    if isinstance(exc, RequestError):
        return InvalidArgument(f"invalid request: {text}")
    if isinstance(exc, CancelledError):
        return flight.FlightCancelledError(f"{type(exc).__name__}: {text}")
    if isinstance(exc, UnsupportedRequest):
        return Unimplemented(f"not supported by FlockSQL: {text}")
    if isinstance(exc, ShuttingDown):
        return flight.FlightUnavailableError(f"server shutting down: {text}")
    if isinstance(exc, RankLostError):
        return flight.FlightUnavailableError(f"{type(exc).__name__}: {text}")
    if isinstance(exc, FlockError):
        return flight.FlightInternalError(f"{type(exc).__name__}: {text}")
    log.error("internal error while serving a request", exc_info=exc)
    return flight.FlightInternalError(f"internal error: {type(exc).__name__}: {text}")


def flight_call(method):
    """Decorator for FlightServerBase methods: every exception leaves through `to_flight_error`."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - every error must become a Flight status
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            error = to_flight_error(exc)
        raise error  # outside the except block: no chained context, a one-frame traceback

    return wrapper


_DETAIL = re.compile(r"\.? ?Detail: Python exception:.*", re.DOTALL)


def client_message(exc: BaseException) -> str:
    """An error from the ADBC or Flight client, without the server-side Python traceback detail."""
    return _DETAIL.sub("", str(exc)).strip()
