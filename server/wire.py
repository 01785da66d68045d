"""The Flight SQL protobuf messages, encoded and decoded by hand.

Flight SQL commands travel as protobuf messages (format/FlightSql.proto in Apache Arrow) wrapped in a
`google.protobuf.Any`. pyarrow ships no Flight SQL bindings, and the few messages we need hold only
strings, bytes, bools and integers, so this module speaks the protobuf wire format itself rather than
adding the `protobuf` package and generated code as a dependency: a field is a varint key
(`number << 3 | wire_type`) followed by a varint (wire type 0) or a length-prefixed byte string
(wire type 2).

Each message is a frozen dataclass whose `FIELDS` tuple maps proto field numbers to attributes:

    >>> CommandStatementQuery("SELECT 1").encode()
    b'\\n\\x08SELECT 1'
    >>> CommandStatementQuery.decode(b'\\n\\x08SELECT 1')
    CommandStatementQuery(query='SELECT 1', transaction_id=None)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

SQL_TYPE_URL_PREFIX = "type.googleapis.com/arrow.flight.protocol.sql."

_VARINT = 0
_FIXED64 = 1
_LENGTH_DELIMITED = 2
_FIXED32 = 5

_UINT64_MASK = (1 << 64) - 1


class WireError(ValueError):
    """Bytes that are not a well-formed protobuf message of the expected kind."""


# --- the wire format -------------------------------------------------------------------------


def encode_varint(value: int) -> bytes:
    """Base-128 varint; negative numbers as 64-bit two's complement (ten bytes), as protobuf does."""
    value &= _UINT64_MASK
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def decode_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise WireError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError("varint longer than ten bytes")


def parse_fields(data: bytes) -> dict[int, list[int | bytes]]:
    """Every field of one message, by number, in wire order: ints for varints, bytes otherwise."""
    fields: dict[int, list[int | bytes]] = {}
    pos = 0
    data = bytes(data)
    while pos < len(data):
        key, pos = decode_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire_type == _VARINT:
            value, pos = decode_varint(data, pos)
        elif wire_type == _LENGTH_DELIMITED:
            length, pos = decode_varint(data, pos)
            if pos + length > len(data):
                raise WireError("truncated length-delimited field")
            value, pos = data[pos:pos + length], pos + length
        elif wire_type == _FIXED64:
            value, pos = int.from_bytes(data[pos:pos + 8], "little"), pos + 8
        elif wire_type == _FIXED32:
            value, pos = int.from_bytes(data[pos:pos + 4], "little"), pos + 4
        else:
            raise WireError(f"unsupported wire type {wire_type}")
        if pos > len(data):
            raise WireError("truncated fixed-width field")
        fields.setdefault(number, []).append(value)
    return fields


def _key(number: int, wire_type: int) -> bytes:
    return encode_varint(number << 3 | wire_type)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _key(number, _LENGTH_DELIMITED) + encode_varint(len(payload)) + payload


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


# --- messages --------------------------------------------------------------------------------

# Field kinds. A trailing "?" marks a proto3 `optional` field: None when absent, and sent even when
# it holds the default value (an empty catalog string means "tables without a catalog", which is
# not the same as no catalog filter). A trailing "*" marks a repeated field, held as a tuple.
_SCALAR_KINDS = {"string", "bytes", "bool", "int32", "int64", "uint32", "enum", "message"}


def _default(kind: str):
    if kind.endswith("?"):
        return None
    if kind.endswith("*"):
        return ()
    return {"string": "", "bytes": b"", "message": b"", "bool": False}.get(kind, 0)


def _decode_value(kind: str, raw: int | bytes, name: str):
    if kind in ("string", "bytes", "message"):
        if not isinstance(raw, bytes):
            raise WireError(f"field {name!r} should be length-delimited")
        if kind == "string":
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise WireError(f"field {name!r} is not valid UTF-8") from exc
        return raw
    if not isinstance(raw, int):
        raise WireError(f"field {name!r} should be a varint")
    if kind == "bool":
        return bool(raw)
    if kind in ("int32", "enum"):
        return _signed(raw, 32)
    if kind == "int64":
        return _signed(raw, 64)
    return raw & 0xFFFFFFFF  # uint32


def _encode_value(number: int, kind: str, value) -> bytes:
    if kind == "string":
        return _length_delimited(number, value.encode("utf-8"))
    if kind in ("bytes", "message"):
        return _length_delimited(number, bytes(value))
    return _key(number, _VARINT) + encode_varint(int(value))


@dataclass(frozen=True, slots=True)
class Message:
    """A protobuf message; subclasses list their fields as (number, attribute, kind)."""

    FIELDS: ClassVar[tuple[tuple[int, str, str], ...]] = ()

    @classmethod
    def decode(cls, data: bytes):
        fields = parse_fields(data)
        values = {}
        for number, name, kind in cls.FIELDS:
            raws = fields.get(number)
            base = kind.rstrip("?*")
            if not raws:
                values[name] = _default(kind)
            elif kind.endswith("*"):
                items = []
                for raw in raws:
                    if isinstance(raw, bytes) and base not in ("string", "bytes", "message"):
                        # A packed repeated scalar: one length-delimited run of varints.
                        pos = 0
                        while pos < len(raw):
                            item, pos = decode_varint(raw, pos)
                            items.append(_decode_value(base, item, name))
                    else:
                        items.append(_decode_value(base, raw, name))
                values[name] = tuple(items)
            else:
                values[name] = _decode_value(base, raws[-1], name)  # last one wins, as in protobuf
        return cls(**values)

    def encode(self) -> bytes:
        out = bytearray()
        for number, name, kind in self.FIELDS:
            value = getattr(self, name)
            base = kind.rstrip("?*")
            if kind.endswith("*"):
                for item in value:
                    out += _encode_value(number, base, item)
            elif kind.endswith("?"):
                if value is not None:
                    out += _encode_value(number, base, value)
            elif value != _default(kind):
                out += _encode_value(number, base, value)
        return bytes(out)

    @classmethod
    def type_name(cls) -> str:
        return cls.__name__

    def pack(self) -> bytes:
        """This message wrapped in a google.protobuf.Any, as Flight SQL commands travel."""
        return pack_any(self.type_name(), self.encode())


def pack_any(type_name: str, payload: bytes) -> bytes:
    return _length_delimited(1, (SQL_TYPE_URL_PREFIX + type_name).encode()) + _length_delimited(2, payload)


def unpack_any(data: bytes) -> tuple[str, bytes]:
    """(Flight SQL message name, its encoded bytes) from a serialized google.protobuf.Any."""
    fields = parse_fields(data)
    url = fields.get(1, [b""])[-1]
    payload = fields.get(2, [b""])[-1]
    if not isinstance(url, bytes) or not isinstance(payload, bytes):
        raise WireError("not a google.protobuf.Any")
    type_url = url.decode("utf-8", "replace")
    if not type_url.startswith(SQL_TYPE_URL_PREFIX):
        raise WireError(f"not a Flight SQL message: type_url {type_url!r}")
    return type_url[len(SQL_TYPE_URL_PREFIX):], payload


def _message(*fields: tuple[int, str, str]):
    """Class decorator: a frozen dataclass Message whose attributes are the listed fields."""

    def wrap(cls):
        cls.FIELDS = tuple(fields)
        cls.__annotations__ = {name: object for _, name, _ in fields}
        for _, name, kind in fields:
            setattr(cls, name, dataclasses.field(default=_default(kind)))
        return dataclass(frozen=True, slots=True)(cls)

    return wrap


# Commands (the `cmd` of a FlightDescriptor).


@_message((1, "query", "string"), (2, "transaction_id", "bytes?"))
class CommandStatementQuery(Message):
    pass


@_message((1, "query", "string"), (2, "transaction_id", "bytes?"))
class CommandStatementUpdate(Message):
    pass


@_message((1, "prepared_statement_handle", "bytes"))
class CommandPreparedStatementQuery(Message):
    pass


@_message((1, "prepared_statement_handle", "bytes"))
class CommandPreparedStatementUpdate(Message):
    pass


@_message((1, "info", "uint32*"))
class CommandGetSqlInfo(Message):
    pass


@_message((1, "data_type", "int32?"))
class CommandGetXdbcTypeInfo(Message):
    pass


@_message()
class CommandGetCatalogs(Message):
    pass


@_message((1, "catalog", "string?"), (2, "db_schema_filter_pattern", "string?"))
class CommandGetDbSchemas(Message):
    pass


@_message(
    (1, "catalog", "string?"),
    (2, "db_schema_filter_pattern", "string?"),
    (3, "table_name_filter_pattern", "string?"),
    (4, "table_types", "string*"),
    (5, "include_schema", "bool"),
)
class CommandGetTables(Message):
    pass


@_message()
class CommandGetTableTypes(Message):
    pass


@_message((1, "catalog", "string?"), (2, "db_schema", "string?"), (3, "table", "string"))
class CommandGetPrimaryKeys(Message):
    pass


@_message((1, "catalog", "string?"), (2, "db_schema", "string?"), (3, "table", "string"))
class CommandGetExportedKeys(Message):
    pass


@_message((1, "catalog", "string?"), (2, "db_schema", "string?"), (3, "table", "string"))
class CommandGetImportedKeys(Message):
    pass


@_message(
    (1, "pk_catalog", "string?"),
    (2, "pk_db_schema", "string?"),
    (3, "pk_table", "string"),
    (4, "fk_catalog", "string?"),
    (5, "fk_db_schema", "string?"),
    (6, "fk_table", "string"),
)
class CommandGetCrossReference(Message):
    pass


@_message((1, "table_definition_options", "message"), (2, "table", "string"), (3, "schema", "string?"),
          (4, "catalog", "string?"), (5, "temporary", "bool"), (6, "transaction_id", "bytes?"))
class CommandStatementIngest(Message):
    """Bulk ingest (ADBC adbc_ingest): the rows follow in the DoPut stream."""


@_message((1, "if_not_exist", "enum"), (2, "if_exists", "enum"))
class TableDefinitionOptions(Message):
    """CommandStatementIngest.TableDefinitionOptions. if_not_exist: 0 unspecified, 1 create, 2 fail;
    if_exists: 0 unspecified, 1 fail, 2 append, 3 replace."""


@_message((1, "plan", "message"), (2, "transaction_id", "bytes?"))
class CommandStatementSubstraitPlan(Message):
    """Decoded only to be refused by name."""


# Tickets and DoPut results.


@_message((1, "statement_handle", "bytes"))
class TicketStatementQuery(Message):
    pass


@_message((1, "record_count", "int64"))
class DoPutUpdateResult(Message):
    pass


@_message((1, "prepared_statement_handle", "bytes?"))
class DoPutPreparedStatementResult(Message):
    pass


# Actions.


@_message((1, "query", "string"), (2, "transaction_id", "bytes?"))
class ActionCreatePreparedStatementRequest(Message):
    pass


@_message(
    (1, "prepared_statement_handle", "bytes"),
    (2, "dataset_schema", "bytes"),
    (3, "parameter_schema", "bytes"),
)
class ActionCreatePreparedStatementResult(Message):
    pass


@_message((1, "prepared_statement_handle", "bytes"))
class ActionClosePreparedStatementRequest(Message):
    pass


@_message()
class ActionBeginTransactionRequest(Message):
    pass


@_message((1, "transaction_id", "bytes"))
class ActionBeginTransactionResult(Message):
    pass


@_message((1, "transaction_id", "bytes"), (2, "action", "enum"))
class ActionEndTransactionRequest(Message):
    """action: 1 commit, 2 rollback."""

    COMMIT, ROLLBACK = 1, 2


@_message((1, "info", "bytes"))
class ActionCancelQueryRequest(Message):
    """The deprecated Flight SQL "CancelQuery" action; `info` is a serialized FlightInfo."""


@_message((1, "result", "enum"))
class ActionCancelQueryResult(Message):
    UNSPECIFIED: ClassVar[int] = 0
    CANCELLED: ClassVar[int] = 1
    CANCELLING: ClassVar[int] = 2
    NOT_CANCELLABLE: ClassVar[int] = 3


@_message((1, "info", "message"))
class CancelFlightInfoRequest(Message):
    """The core Flight "CancelFlightInfo" action (Flight.proto); sent bare, not in an Any."""


@_message((1, "status", "enum"))
class CancelFlightInfoResult(Message):
    UNSPECIFIED: ClassVar[int] = 0
    CANCELLED: ClassVar[int] = 1
    CANCELLING: ClassVar[int] = 2
    NOT_CANCELLABLE: ClassVar[int] = 3


COMMANDS: dict[str, type[Message]] = {
    cls.__name__: cls
    for cls in (
        CommandStatementQuery,
        CommandStatementUpdate,
        CommandPreparedStatementQuery,
        CommandPreparedStatementUpdate,
        CommandGetSqlInfo,
        CommandGetXdbcTypeInfo,
        CommandGetCatalogs,
        CommandGetDbSchemas,
        CommandGetTables,
        CommandGetTableTypes,
        CommandGetPrimaryKeys,
        CommandGetExportedKeys,
        CommandGetImportedKeys,
        CommandGetCrossReference,
        CommandStatementIngest,
        CommandStatementSubstraitPlan,
        TicketStatementQuery,
    )
}


def decode_command(data: bytes) -> Message:
    """The Flight SQL command inside a descriptor's or ticket's Any."""
    name, payload = unpack_any(data)
    cls = COMMANDS.get(name)
    if cls is None:
        raise WireError(f"unknown Flight SQL command {name!r}")
    return cls.decode(payload)


def decode_action_body(data: bytes, cls: type[Message]) -> Message:
    """A Flight SQL action body: an Any holding `cls` (bare bytes are accepted too)."""
    try:
        name, payload = unpack_any(data)
    except WireError:
        return cls.decode(data)
    if name != cls.__name__:
        raise WireError(f"expected {cls.__name__}, got {name}")
    return cls.decode(payload)
