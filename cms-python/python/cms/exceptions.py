"""The exceptions of ``cms``, re-exported from the native module where they are declared.

``CmsError`` is the base; each subclass is one family of error codes. Every exception has ``.code`` (the
stable snake_case code, the same in Rust, Node and C), ``.location`` (the record at fault as text, e.g.
``usage.csv line 12``; ``None`` when the error names none) and ``.source`` (that location's file, page or
method). The mapping of codes to families is ``cms-python/src/errors.rs`` (``family``):

==================  ==========================================================================
``InputError``      bad_header, bad_record, bad_decimal, bad_timestamp, bad_meter_id,
                    negative_quantity, bad_interval, invalid_hierarchy, tier_overlap, tier_start,
                    invalid_period, invalid_value, bad_json
``NotFoundError``   unknown_subscription, unknown_node
``ConflictError``   duplicate_node, conflict
``ForbiddenError``  forbidden, policy_refused
``BillingError``    unpriced_meter, currency_mismatch, overflow
``IngestError``     mixed_granularity, late_usage_refused
``StorageError``    io, store
``RemoteError``     http, usage_api, auth
``AuditError``      audit_broken
==================  ==========================================================================
"""

from ._cms import (
    AuditError,
    BillingError,
    CmsError,
    ConflictError,
    ForbiddenError,
    IngestError,
    InputError,
    NotFoundError,
    RemoteError,
    StorageError,
)

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
    "StorageError",
]
