"""The error hierarchy. The server maps these to Flight status codes in one place."""


class FlockError(Exception):
    """Root of every error FlockSQL raises on purpose."""


class ParseError(FlockError):
    """The SQL text is not valid; the message carries line and column."""


class CatalogError(FlockError):
    """An unknown table or column (named in the message), or a bad data folder."""


class PlanError(FlockError):
    """A plan node was built with invalid arguments."""


class NotSupportedError(FlockError):
    """A construct FlockSQL does not run; the message starts with 'not supported:'."""

    def __init__(self, what: str):
        super().__init__(what if what.startswith("not supported:") else f"not supported: {what}")


class InvalidValueError(FlockError):
    """A statement gave a value its target cannot take (a setting's value, say), or a query's data one a
    function or cast cannot (DuckDB's Conversion, Out of Range and Invalid Input errors)."""


class ConstraintError(FlockError):
    """A write that would break a table's constraint (a key held twice, NOT NULL, CHECK): nothing
    was written. DuckDB's Constraint Error."""


class ExecutionError(FlockError):
    """A rank failed while running a query; the message is the original one."""


class CommError(FlockError):
    """A communication failure between ranks."""


class RankLostError(CommError):
    """A rank of the flock died (engine/lifeline.py): the flock ends and its supervisor starts it again."""


class CancelledError(FlockError):
    """The query was cancelled or ran past its timeout."""


class InternalError(FlockError):
    """A bug in FlockSQL."""


def from_duckdb(error: Exception, prefix: str = "") -> FlockError:
    """A DuckDB error raised by what the user wrote (a CREATE TABLE's types, a RETURNING list, a
    CHECK over the new rows, a query of the system catalog) as ours, by its kind: an unknown name,
    a statement that does not bind, a value that does not fit are the client's to mend; the rest
    stays ExecutionError. The message's first line, after `prefix`."""
    import duckdb
    text = prefix + str(error).splitlines()[0]
    kinds = ((duckdb.CatalogException, CatalogError), (duckdb.BinderException, PlanError),
             (duckdb.ParserException, ParseError), (duckdb.ConstraintException, ConstraintError),
             (duckdb.NotImplementedException, NotSupportedError),
             ((duckdb.ConversionException, duckdb.OutOfRangeException, duckdb.InvalidInputException,
               duckdb.TypeMismatchException), InvalidValueError))
    return next((ours(text) for theirs, ours in kinds if isinstance(error, theirs)), ExecutionError(text))
