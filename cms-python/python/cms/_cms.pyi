"""The native module of ``cms`` (Rust, pyo3): the facade's JSON calls and the exception classes.

Python code uses ``cms.Cms`` and ``cms.call``, which convert values (``cms._convert``) and call these.
"""

from collections.abc import Mapping, Sequence
from typing import Any, Optional, final

__all__ = [
    "ArrowStream",
    "AuditError",
    "BillingError",
    "CmsError",
    "ConflictError",
    "ForbiddenError",
    "IngestError",
    "InputError",
    "MonthEndSetup",
    "NotFoundError",
    "RemoteError",
    "SETUP_FILES",
    "Session",
    "StorageError",
    "USAGE_COLUMNS",
    "call",
    "error_class",
]

class CmsError(Exception):
    """The base of every CMS error: ``.code`` is the stable snake_case code, ``.location`` the record at fault."""

    code: str
    location: Optional[str]
    source: Optional[str]

class InputError(CmsError):
    """Bad input: a file, page, parameter or document that does not read or does not validate."""

class NotFoundError(CmsError):
    """A node or subscription that does not exist (or is outside the principal's reach)."""

class ConflictError(CmsError):
    """A clash with what is stored: a duplicate id, or another writer that committed first."""

class ForbiddenError(CmsError):
    """Refused by governance: the principal's roles do not allow it, or a policy refuses it."""

class BillingError(CmsError):
    """Usage or prices that cannot be billed as asked: unpriced meters (strict), mixed currencies, overflow."""

class IngestError(CmsError):
    """Usage refused by the ingestion rules: mixed granularities, late usage beyond the look-back window."""

class StorageError(CmsError):
    """Files and stores: an input that cannot be read, a store that fails or is closed."""

class RemoteError(CmsError):
    """A stamp's Usage API or identity provider: HTTP failures, API error codes, authentication."""

class AuditError(CmsError):
    """The audit trail or an issued document does not verify."""

#: The columns of ``usage.csv`` the month-end reads, in order.
USAGE_COLUMNS: list[str]
#: The workload's setup files (everything but the usage).
SETUP_FILES: list[str]

def call(method: str, params: str) -> str:
    """Call a method that needs no session, with the GIL released (JSON text in and out)."""

def error_class(code: str) -> type[CmsError]:
    """The exception class an error code raises (its family's subclass of ``CmsError``)."""

@final
class Session:
    """The engine on a store (``cms_api::Session``), driven by JSON calls."""

    def __new__(cls, store: str) -> "Session": ...
    def call(self, method: str, params: str) -> str:
        """Call any method by name, with the GIL released (JSON text in and out)."""
    def ingest_arrow(self, data: Any, source: str, params: str) -> str:
        """Ingest usage given as Arrow data (``__arrow_c_stream__``), its columns read in place; returns the
        ingestion summary as JSON text."""
    def stored_usage_arrow(self, params: str) -> "ArrowStream":
        """The usage stored for a period that a principal may read, as Arrow columns made in Rust."""
    def close(self) -> None:
        """Close the session and release its store."""
    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
    @property
    def store(self) -> str:
        """The store spec the session was opened with, as JSON text."""

@final
class ArrowStream:
    """Arrow data made in Rust: ``__arrow_c_stream__`` exports it (``pyarrow.table`` imports it, no copy)."""

    def __arrow_c_stream__(self, requested_schema: Optional[object] = None) -> object:
        """A capsule holding an Arrow C stream of the data."""
    @property
    def num_rows(self) -> int:
        """The number of rows."""

@final
class MonthEndSetup:
    """A workload's setup for month-end partials (``cms.distributed``), built from the setup files' contents."""

    def __new__(cls, files: Mapping[str, bytes]) -> "MonthEndSetup": ...
    @property
    def period(self) -> str:
        """The period billed, ``YYYY-MM``."""
    def rate_arrow(self, tables: Sequence[Any], sources: Sequence[str]) -> bytes:
        """Rate Arrow tables of usage (``__arrow_c_stream__``, columns as strings), in order, into a partial."""
    @staticmethod
    def merge(partials: Sequence[bytes]) -> bytes:
        """Merge partials (in the order given) into one partial; all must come from one setup."""
    def finish(
        self, partials: Sequence[bytes], out: str, strict: bool = False, focus_out: Optional[str] = None
    ) -> str:
        """Merge partials, bill, write the outputs; returns the summary as JSON text."""
