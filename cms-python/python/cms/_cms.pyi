"""The native module of ``cms`` (Rust, pyo3): the facade's JSON calls and the exception classes.

Python code uses ``cms.Cms`` and ``cms.call``, which convert values (``cms._convert``) and call these.
"""

from typing import Optional, final

__all__ = [
    "AuditError",
    "BillingError",
    "CmsError",
    "ConflictError",
    "ForbiddenError",
    "IngestError",
    "InputError",
    "NotFoundError",
    "RemoteError",
    "Session",
    "StorageError",
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
    def close(self) -> None:
        """Close the session and release its store."""
    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
    @property
    def store(self) -> str:
        """The store spec the session was opened with, as JSON text."""
