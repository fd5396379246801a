"""CMS from Python: exact billing, invoices and commissions for Azure Stack Hub.

A thin layer over the Rust library (``cms_api``): every call converts its arguments (``cms._convert``),
runs in Rust with the GIL released, and raises a :class:`CmsError` subclass with ``.code`` on failure.

- :class:`Cms`: the engine on a store (:class:`MemoryStore` or :class:`SqliteStore`); :meth:`Cms.call`
  reaches every method of :func:`methods` by name, and each has a typed method too (the free ones are
  functions of this module).
- :func:`month_end`: the month-end job on a folder of files (what ``cms month-end`` runs).
- :mod:`cms.frames`: usage in and results out as pandas DataFrames and pyarrow Tables
  (``pip install "cms[frames]"``).

Decimals are ``decimal.Decimal`` (never ``float``), instants aware ``datetime`` (RFC 3339 strings are
accepted too), periods ``"YYYY-MM"`` strings.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Optional, TypedDict, Union, cast

from . import _cms
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
from ._convert import decode, encode, instant_text

if TYPE_CHECKING:
    import pandas
    import pyarrow

    from .frames import MonthEndFrames, MonthEndTables

__all__ = [
    "AuditError",
    "BillingError",
    "Cms",
    "CmsError",
    "ConflictError",
    "ForbiddenError",
    "IngestError",
    "IngestSummary",
    "InputError",
    "Instant",
    "MemoryStore",
    "MonthEndSummary",
    "NotFoundError",
    "PrincipalLike",
    "RemoteError",
    "SqliteStore",
    "StorageError",
    "Unpriced",
    "UsageRecord",
    "call",
    "error_codes",
    "evaluate_vector",
    "methods",
    "month_end",
    "month_end_frames",
    "month_end_tables",
    "parse_usage_page",
    "version",
]

#: An instant: an aware ``datetime``, or an RFC 3339 string (``"2026-10-01T00:00:00Z"``).
Instant = Union[_dt.datetime, str]
#: A principal: ``{"id": ..., "node": ...}`` (``node`` defaults to the platform), or just its id.
PrincipalLike = Union[str, Mapping[str, str]]
#: A period: ``"YYYY-MM"``, ``"START/END"`` (RFC 3339), or ``{"start": ..., "end": ...}``.
PeriodLike = Union[str, Mapping[str, Instant]]


class Unpriced(TypedDict):
    """Usage of a (subscription, meter) that no price prices: reported by the month-end, not billed."""

    subscription: str
    meter: str
    quantity: Decimal


class MonthEndSummary(TypedDict):
    """What :func:`month_end` did."""

    period: str
    usage_rows: int
    counted: int
    duplicates: int
    corrections: int
    before_period: int
    after_period: int
    invoices: int
    invoice_lines: int
    commission_statements: int
    overrides: int
    totals: dict[str, Decimal]
    unpriced: list[Unpriced]
    outputs: list[str]
    threads: int
    elapsed_ms: int


class IngestSummary(TypedDict):
    """What an ingestion did (the core's ``IngestSummary``)."""

    pages: int
    received: int
    stored: int
    duplicates: int
    corrections: list[dict[str, Any]]
    excluded: int
    tax_rows_skipped: int
    late_adjustments: int
    refused: list[dict[str, Any]]
    unknown_meters: dict[str, int]
    unknown_subscriptions: dict[str, int]
    double_counting: int
    by_period: dict[str, int]
    checkpoints: list[dict[str, Any]]


class UsageRecord(TypedDict):
    """One usage record as stored (extra keys: ``tags``, ``additional_info``, ``cost``, ``adjustments``)."""

    subscription: str
    meter: str
    start: _dt.datetime
    end: _dt.datetime
    quantity: Decimal
    resource_uri: str
    location: str


def call(method: str, params: Optional[Mapping[str, Any]] = None) -> Any:
    """Call a method that needs no store (``month_end``, ``parse_usage_page``, ``methods``, ...).

    Args:
        method: the method's name (:func:`methods` lists every method; ``session`` says if it needs a
            :class:`Cms`).
        params: its named parameters (Python values: ``Decimal``, ``datetime``, ``str``, ...).

    Returns:
        The result as Python values (``Decimal``, aware ``datetime``, dicts and lists).

    Raises:
        CmsError: the subclass of the error's family, with ``.code`` and ``.location``.
    """
    return decode(_cms.call(method, encode(params)))


def methods() -> list[dict[str, Any]]:
    """Every method of the engine: ``name``, ``signature``, ``doc`` and ``session`` (needs a store)."""
    return cast("list[dict[str, Any]]", call("methods"))


def error_codes() -> list[str]:
    """Every error code the library can raise (each maps to one :class:`CmsError` subclass)."""
    return cast("list[str]", call("error_codes"))


def version() -> str:
    """The library's version."""
    return cast(str, call("version")["version"])


def evaluate_vector(case: Mapping[str, Any]) -> Any:
    """Evaluate a conformance case of ``tests/vectors/*.json`` and return what it gives.

    Args:
        case: the case (its ``kind``: ``tier_amount``, ``round``, ``meter_id``, ``timestamp``,
            ``usage_page`` or ``month_end``, and its ``input``).

    Returns:
        The actual result, to compare with the case's ``expected``.
    """
    return call("evaluate_vector", {"case": dict(case)})


def parse_usage_page(page: str | bytes, source: str = "page") -> dict[str, Any]:
    """Parse a Usage API response page without storing it.

    Args:
        page: the page's JSON text.
        source: its name in errors (``page-3.json record 4``).

    Returns:
        ``{"records": [UsageRecord, ...], "next_link": str | None}``.
    """
    text = page.decode("utf-8") if isinstance(page, bytes) else page
    return cast("dict[str, Any]", call("parse_usage_page", {"page": text, "source": source}))


def month_end(
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    pages_dir: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    strict: bool = False,
    focus_out: str | os.PathLike[str] | None = None,
) -> MonthEndSummary:
    """The month-end of ``WORKLOAD.md`` on a folder of files, as ``cms month-end`` runs it.

    Reads ``hierarchy.csv``, ``subscriptions.csv``, ``prices.csv``, ``commission.csv``, ``plan.json`` and
    ``usage.csv`` (or the Usage API pages of ``pages_dir``) from ``data_dir``; writes
    ``invoice_lines.csv``, ``invoices.csv``, ``commissions.csv`` and ``overrides.csv`` into ``out_dir``,
    byte-identical to ``cms month-end``. The GIL is released while it runs.

    Args:
        data_dir: the workload folder.
        out_dir: the output folder (created if missing).
        pages_dir: a folder of Usage API pages (``*.json``, file-name order) read instead of ``usage.csv``.
        threads: worker threads (default: every core; ``1`` runs single-threaded).
        strict: refuse usage of meters no price prices (``BillingError``, ``unpriced_meter``) instead of
            reporting it in ``unpriced``.
        focus_out: a folder for FOCUS 1.2 exports of the billed data.

    Returns:
        The summary: counts, ``totals`` per currency (``Decimal``), ``unpriced`` usage, the files written.

    Raises:
        StorageError: ``io`` for a missing data folder or an unreadable file (``.location`` names it).
        InputError: a bad input file; ``.location`` names the file and line (or page and record).
    """
    params: dict[str, Any] = {"data": os.fspath(data_dir), "out": os.fspath(out_dir), "strict": strict}
    if pages_dir is not None:
        params["pages"] = os.fspath(pages_dir)
    if threads is not None:
        params["threads"] = threads
    if focus_out is not None:
        params["focus_out"] = os.fspath(focus_out)
    return cast(MonthEndSummary, call("month_end", params))


def month_end_frames(
    data_dir: str | os.PathLike[str],
    *,
    out_dir: str | os.PathLike[str] | None = None,
    pages_dir: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    strict: bool = False,
) -> MonthEndFrames:
    """:func:`month_end`, its outputs read back as pandas DataFrames (see :func:`cms.frames.month_end_frames`).

    Returns:
        ``.summary`` and the DataFrames ``.invoice_lines``, ``.invoices``, ``.commissions``,
        ``.overrides``; decimal columns hold ``decimal.Decimal``.
    """
    from .frames import month_end_frames as frames

    return frames(data_dir, out_dir=out_dir, pages_dir=pages_dir, threads=threads, strict=strict)


def month_end_tables(
    data_dir: str | os.PathLike[str],
    *,
    out_dir: str | os.PathLike[str] | None = None,
    pages_dir: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    strict: bool = False,
) -> MonthEndTables:
    """:func:`month_end`, its outputs read back as pyarrow Tables (decimals as ``decimal128``)."""
    from .frames import month_end_tables as tables

    return tables(data_dir, out_dir=out_dir, pages_dir=pages_dir, threads=threads, strict=strict)


class MemoryStore:
    """An in-memory store: gone when the :class:`Cms` is closed (tests, previews, notebooks)."""

    def spec(self) -> str:
        """The store spec as the engine reads it (JSON text)."""
        return json.dumps("memory")

    def __repr__(self) -> str:
        return "MemoryStore()"


class SqliteStore:
    """A SQLite file (the default store of ``cms``): created with its schema if missing, migrated if older.

    Args:
        path: the database file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)

    def spec(self) -> str:
        """The store spec as the engine reads it (JSON text)."""
        return json.dumps({"sqlite": self.path})

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"


def _os_user() -> str:
    """The OS user's name (the ``cms`` command's principal), or ``operator`` where there is none."""
    try:
        return getpass.getuser() or "operator"
    except (KeyError, OSError):
        return "operator"


def _period(period: PeriodLike) -> Any:
    return period if isinstance(period, str) else dict(period)


class Cms:
    """The engine on a store: commands recorded as events, queries scoped to a principal.

    Every method runs in Rust with the GIL released; a refused command changes nothing and raises a
    :class:`CmsError` subclass. Commands take ``at`` (the instant they happen: the engine has no clock;
    ``None`` is the current UTC time, as the ``cms`` command does) and ``principal`` (who acts; ``None``
    is the principal given here). :meth:`call` reaches every method of :func:`methods` by name.

    Args:
        store: :class:`MemoryStore` (the default) or :class:`SqliteStore`; a path opens a SQLite file.
        principal: who acts when a call names nobody: ``{"id", "node"}`` or an id (acting at the
            platform). Defaults to the OS user at the platform, like the ``cms`` command.

    Example::

        with cms.Cms(cms.SqliteStore("cms.db")) as engine:
            engine.execute({"type": "node_added", "id": "contoso", "kind": "partner",
                            "parent": None, "name": "Contoso"}, at="2026-09-01T00:00:00Z")
            print(engine.nodes(at="2026-09-02T00:00:00Z"))
    """

    def __init__(
        self,
        store: MemoryStore | SqliteStore | str | os.PathLike[str] | None = None,
        *,
        principal: PrincipalLike | None = None,
    ) -> None:
        if store is None:
            store = MemoryStore()
        elif isinstance(store, (str, os.PathLike)):
            store = SqliteStore(store)
        self.store: MemoryStore | SqliteStore = store
        self.principal: dict[str, str] = self._principal(principal or _os_user())
        self._session = _cms.Session(store.spec())

    # ---- Plumbing.

    def __enter__(self) -> Cms:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Cms(store={self.store!r}, principal={self.principal!r})"

    def close(self) -> None:
        """Close the engine and release its store; later calls raise ``StorageError`` (code ``store``)."""
        self._session.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._session.closed

    @staticmethod
    def _principal(principal: PrincipalLike) -> dict[str, str]:
        if isinstance(principal, str):
            return {"id": principal, "node": "platform"}
        return dict(principal)

    def _who(self, principal: PrincipalLike | None) -> dict[str, str]:
        return self.principal if principal is None else self._principal(principal)

    @staticmethod
    def _at(at: Instant | None) -> str:
        return instant_text(_dt.datetime.now(_dt.timezone.utc) if at is None else at)

    def call(self, method: str, params: Optional[Mapping[str, Any]] = None) -> Any:
        """Call any method of :func:`methods` by name, with the GIL released.

        Args:
            method: the method's name.
            params: its named parameters (Python values); principals, instants and periods are passed
                as given (no defaults are filled in here).

        Returns:
            The result as Python values.

        Raises:
            CmsError: the subclass of the error's family; a refused command changes nothing.
        """
        return decode(self._session.call(method, encode(params)))

    # ---- Commands.

    def execute(
        self, event: Mapping[str, Any], *, at: Instant | None = None, principal: PrincipalLike | None = None
    ) -> int:
        """Check, persist and apply one event (the core's Event JSON, as a dict); returns its sequence."""
        result = self.call("execute", {"principal": self._who(principal), "at": self._at(at), "event": event})
        return cast(int, result["seq"])

    def execute_all(
        self,
        events: Sequence[Mapping[str, Any]],
        *,
        at: Instant | None = None,
        principal: PrincipalLike | None = None,
    ) -> int:
        """Several events as one command: all applied, or none; returns the last sequence number."""
        params = {"principal": self._who(principal), "at": self._at(at), "events": list(events)}
        return cast(int, self.call("execute_all", params)["seq"])

    def onboard_subscription(
        self,
        id: str,
        tenant: str,
        name: str,
        info: Mapping[str, Any] | None = None,
        *,
        at: Instant | None = None,
        principal: PrincipalLike | None = None,
    ) -> int:
        """Onboard a subscription under a tenant with its attributes (offer, region, external ids)."""
        params: dict[str, Any] = {
            "principal": self._who(principal),
            "at": self._at(at),
            "id": id,
            "tenant": tenant,
            "name": name,
        }
        if info is not None:
            params["info"] = info
        return cast(int, self.call("onboard_subscription", params)["seq"])

    def apply_change_set(
        self, change_set: Mapping[str, Any], *, at: Instant | None = None, principal: PrincipalLike | None = None
    ) -> int:
        """Apply a bulk price change (a new version of every list in its scope)."""
        params = {"principal": self._who(principal), "at": self._at(at), "change_set": change_set}
        return cast(int, self.call("apply_change_set", params)["seq"])

    def close_period(
        self, period: PeriodLike, *, at: Instant | None = None, principal: PrincipalLike | None = None
    ) -> None:
        """Close a period: its month-end is kept as issued; later usage of it becomes adjustments."""
        self.call("close_period", {"principal": self._who(principal), "at": self._at(at), "period": _period(period)})

    def ingest_page(
        self,
        page: str | bytes | os.PathLike[str],
        *,
        source: str | None = None,
        region: str | None = None,
        at: Instant | None = None,
        principal: PrincipalLike | None = None,
    ) -> IngestSummary:
        """Ingest one Usage API response page through the ingestion rules (refused whole if bad).

        Args:
            page: the page's JSON text (``str`` or ``bytes``), or the path of a page file.
            source: its name in errors and the audit trail (default: the file name, or ``"page"``).
            region: the region the page came from.
            at: with ``principal``, ingest as that principal at that instant (else the ingestion
                principal at the batch's latest usage end).
            principal: see ``at``.

        Returns:
            The ingestion summary.
        """
        if isinstance(page, os.PathLike):
            path = os.fspath(page)
            with open(path, encoding="utf-8") as file:
                text = file.read()
            source = source or os.path.basename(path)
        else:
            text = page.decode("utf-8") if isinstance(page, bytes) else page
        params: dict[str, Any] = {"page": text, "source": source or "page"}
        if region is not None:
            params["region"] = region
        params.update(self._actor(at, principal))
        return cast(IngestSummary, self.call("ingest_page", params))

    def ingest_records(
        self,
        records: Iterable[Mapping[str, Any]],
        *,
        origin: str | Mapping[str, Any] | None = None,
        at: Instant | None = None,
        principal: PrincipalLike | None = None,
    ) -> IngestSummary:
        """Ingest usage records (``subscription``, ``meter``, ``start``, ``end``, ``quantity``,
        ``resource_uri``, ``location``) through the ingestion rules.

        Args:
            records: the records; quantities as ``Decimal`` or decimal strings, times as aware
                datetimes or RFC 3339 strings.
            origin: a page name or the core's ``PageOrigin`` (``{"name", "region", ...}``).
            at: with ``principal``, ingest as that principal at that instant.
            principal: see ``at``.

        Returns:
            The ingestion summary.
        """
        params: dict[str, Any] = {"records": [dict(record) for record in records]}
        if origin is not None:
            params["origin"] = origin if isinstance(origin, str) else dict(origin)
        params.update(self._actor(at, principal))
        return cast(IngestSummary, self.call("ingest_records", params))

    def _actor(self, at: Instant | None, principal: PrincipalLike | None) -> dict[str, Any]:
        if at is None and principal is None:
            return {}
        return {"principal": self._who(principal), "at": self._at(at)}

    def ingest_frame(
        self,
        frame: pandas.DataFrame | pyarrow.Table,
        *,
        origin: str | Mapping[str, Any] | None = None,
        at: Instant | None = None,
        principal: PrincipalLike | None = None,
    ) -> IngestSummary:
        """Ingest usage from a pandas DataFrame, a pyarrow Table or RecordBatchReader, or any object with
        ``__arrow_c_stream__`` (Polars, DuckDB results), through the ingestion rules.

        The data goes to Rust through the Arrow C stream interface and its columns are read in place: no
        Python object per row, no JSON (see :func:`cms.frames.arrow_usage` for what a pandas DataFrame
        costs on the way). The stored usage is the same as :meth:`ingest_records` of the same rows.

        Args:
            frame: the columns ``subscription``, ``meter``, ``resource_uri``, ``location`` (strings),
                ``start`` and ``end`` (timestamps with a time zone, or RFC 3339 strings), ``quantity``
                (``Decimal`` objects, decimal strings, integers or an Arrow decimal column: floats are
                refused), optionally ``tags`` and ``additional_info`` (JSON object text); other columns
                are not read.
            origin: a page name or the core's ``PageOrigin``; its name is the source errors name (default
                ``"frame"``).
            at: with ``principal``, ingest as that principal at that instant.
            principal: see ``at``.

        Returns:
            The ingestion summary.

        Raises:
            InputError: a missing column or one of a type that cannot be exact (``bad_decimal`` for a float
                ``quantity``, ``bad_timestamp`` for timestamps without a zone; ``.location`` is
                ``frame field <column>``), or the first bad value (``.location``: ``frame record <row>``,
                rows counted from 0); nothing is stored then.
        """
        from .frames import arrow_usage

        params: dict[str, Any] = {}
        source = "frame"
        if origin is not None:
            params["origin"] = origin if isinstance(origin, str) else dict(origin)
            source = origin if isinstance(origin, str) else str(origin.get("name", source))
        params.update(self._actor(at, principal))
        summary = self._session.ingest_arrow(arrow_usage(frame), source, encode(params))
        return cast(IngestSummary, decode(summary))

    def issue_invoices(
        self,
        period: PeriodLike,
        *,
        buyers: Sequence[str] | None = None,
        at: Instant | None = None,
        principal: PrincipalLike | None = None,
    ) -> list[dict[str, Any]]:
        """Issue the drafts of a period (closing it if open): gapless numbers, SHA-256 of each body."""
        params: dict[str, Any] = {"principal": self._who(principal), "at": self._at(at), "period": _period(period)}
        if buyers is not None:
            params["buyers"] = list(buyers)
        return cast("list[dict[str, Any]]", self.call("issue_invoices", params))

    def issue_interim(
        self, *, at: Instant | None = None, principal: PrincipalLike | None = None
    ) -> list[dict[str, Any]]:
        """Progressive billing: interim invoices for tenants past their threshold."""
        params = {"principal": self._who(principal), "at": self._at(at)}
        return cast("list[dict[str, Any]]", self.call("issue_interim", params))

    def void_invoice(
        self, number: str, reason: str, *, at: Instant | None = None, principal: PrincipalLike | None = None
    ) -> dict[str, Any]:
        """Void an issued invoice with a credit note cancelling it whole; returns the credit note."""
        params = {"principal": self._who(principal), "at": self._at(at), "number": number, "reason": reason}
        return cast("dict[str, Any]", self.call("void_invoice", params))

    def rerate(
        self, period: PeriodLike, reason: str, *, at: Instant | None = None, principal: PrincipalLike | None = None
    ) -> list[dict[str, Any]]:
        """Re-rate a closed period after corrections: credit or debit notes for exactly the difference."""
        params = {"principal": self._who(principal), "at": self._at(at), "period": _period(period), "reason": reason}
        return cast("list[dict[str, Any]]", self.call("rerate", params))

    def refresh(self) -> None:
        """Apply what other writers appended to the store since this engine looked."""
        self.call("refresh")

    def reprocess(
        self,
        period: PeriodLike,
        *,
        tenant: str | None = None,
        region: str | None = None,
        rules: Mapping[str, Any] | None = None,
        principal: PrincipalLike | None = None,
    ) -> dict[str, Any]:
        """Recompute and store the drafts of the open months a range touches, for a tenant and/or region.

        Args:
            period: the range (a month, or ``"START/END"``).
            tenant: only this tenant's drafts.
            region: only usage of this region.
            rules: billing rules (rounding) other than the engine's.
            principal: who asks (``None``: the engine's principal).

        Returns:
            What was recomputed (the core's ``Reprocessed``).
        """
        params: dict[str, Any] = {"principal": self._who(principal), "period": _period(period)}
        for key, value in (("tenant", tenant), ("region", region)):
            if value is not None:
                params[key] = value
        if rules is not None:
            params["rules"] = dict(rules)
        return cast("dict[str, Any]", self.call("reprocess", params))

    def purge_usage(
        self, *, at: Instant | None = None, principal: PrincipalLike | None = None
    ) -> list[dict[str, Any]]:
        """Retention: purge the raw usage of invoiced periods past the policy's age; returns
        ``[{"period", "deleted"}]``."""
        params = {"principal": self._who(principal), "at": self._at(at)}
        return cast("list[dict[str, Any]]", self.call("purge_usage", params))

    def pull_region(
        self,
        region: str,
        *,
        arm_endpoint: str,
        provider_subscription: str,
        tenant: str,
        client_id: str,
        client_secret: str,
        start: Instant,
        until: Instant | None = None,
        subscribers: Sequence[str] | None = None,
        granularity: str | None = None,
        window_hours: int | None = None,
        ca_certificates_pem: str | None = None,
        allow_http: bool = False,
        max_attempts: int | None = None,
    ) -> IngestSummary:
        """Pull a stamp's provider Usage API (from its checkpoints, up to ``until``) through the ingestion
        rules. The GIL is released while it pulls.

        Args:
            region: the stamp's region name (checkpoints are kept per region).
            arm_endpoint: the stamp's ARM endpoint (``https://...``).
            provider_subscription: the provider subscription whose usage is read.
            tenant: the identity tenant of the client credentials.
            client_id: the service principal's id.
            client_secret: its secret.
            start: where to start when the region has no checkpoint yet.
            until: the end of what is pulled (``None``: now).
            subscribers: the subscriber subscriptions to pull (default: the provider's aggregate).
            granularity: ``"hourly"`` (the default) or ``"daily"``.
            window_hours: the width of one request's time window.
            ca_certificates_pem: extra root certificates (a stamp's own CA).
            allow_http: accept a plain ``http://`` endpoint (tests, a local proxy).
            max_attempts: attempts per request before giving up.

        Returns:
            The ingestion summary (``checkpoints`` says how far each source got).
        """
        params: dict[str, Any] = {
            "region": region,
            "arm_endpoint": arm_endpoint,
            "provider_subscription": provider_subscription,
            "tenant": tenant,
            "client_id": client_id,
            "client_secret": client_secret,
            "start": instant_text(start),
            "until": self._at(until),
            "allow_http": allow_http,
        }
        optional: dict[str, Any] = {
            "subscribers": None if subscribers is None else list(subscribers),
            "granularity": granularity,
            "window_hours": window_hours,
            "ca_certificates_pem": ca_certificates_pem,
            "max_attempts": max_attempts,
        }
        params.update({key: value for key, value in optional.items() if value is not None})
        return cast(IngestSummary, self.call("pull_region", params))

    # ---- Monitoring commands: budgets, alerts, the scheduler.

    def set_budget(
        self, budget: Mapping[str, Any], *, at: Instant | None = None, principal: PrincipalLike | None = None
    ) -> int:
        """Set or replace a node's monthly budget (``id``, ``node``, ``amount``, ``currency``, and optionally
        ``warning_percent`` (80), ``breach_percent`` (100), ``forecast`` (True)); returns the event's sequence."""
        params = {"principal": self._who(principal), "at": self._at(at), "budget": budget}
        return cast(int, self.call("set_budget", params)["seq"])

    def acknowledge_alert(
        self, id: int, *, note: str | None = None, at: Instant | None = None, principal: PrincipalLike | None = None
    ) -> int:
        """Acknowledge an open alert of the principal's subtree; returns the event's sequence."""
        params: dict[str, Any] = {"principal": self._who(principal), "at": self._at(at), "id": id}
        if note is not None:
            params["note"] = note
        return cast(int, self.call("acknowledge_alert", params)["seq"])

    def resolve_alert(
        self, id: int, *, note: str | None = None, at: Instant | None = None, principal: PrincipalLike | None = None
    ) -> int:
        """Resolve an alert by hand (an evaluation that still finds its condition opens a new one)."""
        params: dict[str, Any] = {"principal": self._who(principal), "at": self._at(at), "id": id}
        if note is not None:
            params["note"] = note
        return cast(int, self.call("resolve_alert", params)["seq"])

    def evaluate_alerts(
        self, *, at: Instant | None = None, principal: PrincipalLike | None = None
    ) -> list[dict[str, Any]]:
        """Evaluate budgets and alert rules and record it; returns the changes ``[{"id", "change"}]``."""
        params = {"principal": self._who(principal), "at": self._at(at)}
        return cast("list[dict[str, Any]]", self.call("evaluate_alerts", params))

    def record_ingestion(
        self,
        source: str,
        summary: Mapping[str, Any],
        *,
        at: Instant | None = None,
        principal: PrincipalLike | None = None,
    ) -> int:
        """Record ingestion done outside the scheduler (the summary :meth:`ingest_records` returned) as a job
        run of ``source``, so that its refused and late records raise alerts at the next evaluation."""
        params = {"principal": self._who(principal), "at": self._at(at), "source": source, "summary": summary}
        return cast(int, self.call("record_ingestion", params)["seq"])

    def tick(
        self,
        *,
        regions: Sequence[Mapping[str, Any]] = (),
        at: Instant | None = None,
        principal: PrincipalLike | None = None,
    ) -> dict[str, Any]:
        """Run what is due (pull each region, draft and issue invoices, purge, evaluate alerts), each run
        recorded; ticking twice at one instant does nothing twice. A region is configured as for the
        ``pull_region`` method, without ``until``. Returns the report, with ``deliveries``: each alert change
        with its alert, for the caller to deliver (a webhook, a mail)."""
        params = {"principal": self._who(principal), "at": self._at(at), "regions": [dict(r) for r in regions]}
        return cast("dict[str, Any]", self.call("tick", params))

    # ---- Queries.

    def _query(self, method: str, principal: PrincipalLike | None, **params: Any) -> Any:
        fields = {key: value for key, value in params.items() if value is not None}
        return self.call(method, {"principal": self._who(principal), **fields})

    def preview_invoices(
        self, period: PeriodLike, *, buyers: Sequence[str] | None = None, principal: PrincipalLike | None = None
    ) -> list[dict[str, Any]]:
        """What would be issued for a period now (drafts, balances of what is issued); records nothing."""
        buyer_list = None if buyers is None else list(buyers)
        result = self._query("preview_invoices", principal, period=_period(period), buyers=buyer_list)
        return cast("list[dict[str, Any]]", result)

    def drafts(self, period: PeriodLike, *, principal: PrincipalLike | None = None) -> list[dict[str, Any]]:
        """The stored drafts of a month (see ``reprocess``)."""
        return cast("list[dict[str, Any]]", self._query("drafts", principal, period=_period(period)))

    def invoice_documents(
        self, period: PeriodLike | None = None, *, principal: PrincipalLike | None = None
    ) -> list[dict[str, Any]]:
        """Issued, voided and draft documents the principal may see."""
        chosen = None if period is None else _period(period)
        return cast("list[dict[str, Any]]", self._query("invoice_documents", principal, period=chosen))

    def issued_document(self, number: str, *, principal: PrincipalLike | None = None) -> dict[str, Any]:
        """An issued document by number, checked against its recorded hash: ``{"issued", "document"}``."""
        return cast("dict[str, Any]", self._query("issued_document", principal, number=number))

    def commission_report(self, period: PeriodLike, *, principal: PrincipalLike | None = None) -> dict[str, Any]:
        """Commission and override statements from the documents issued in a period."""
        return cast("dict[str, Any]", self._query("commission_report", principal, period=_period(period)))

    def showback(self, period: PeriodLike, *, principal: PrincipalLike | None = None) -> dict[str, Any]:
        """What each department (tenant) and project (subscription) cost, shared costs allocated."""
        return cast("dict[str, Any]", self._query("showback", principal, period=_period(period)))

    def chargeback_journal(
        self, period: PeriodLike, *, principal: PrincipalLike | None = None
    ) -> list[dict[str, Any]]:
        """Chargeback of a period as balanced journal lines."""
        return cast("list[dict[str, Any]]", self._query("chargeback_journal", principal, period=_period(period)))

    def month_end_for(self, period: PeriodLike, *, principal: PrincipalLike | None = None) -> dict[str, Any]:
        """The month-end of a period from stored usage, as the principal may see it."""
        return cast("dict[str, Any]", self._query("month_end_for", principal, period=_period(period)))

    def month_end_report(self, period: PeriodLike, *, rules: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The whole month-end of a period from stored usage, unscoped (the operator's view).

        The GIL is released while it rates.

        Args:
            period: the period.
            rules: billing rules (rounding) other than the engine's.

        Returns:
            The report: ``invoices`` (with ``lines``), ``commissions``, ``overrides``, ``stats``, ...
        """
        params: dict[str, Any] = {"period": _period(period)}
        if rules is not None:
            params["rules"] = dict(rules)
        return cast("dict[str, Any]", self.call("month_end_report", params))

    def month_end_in(
        self,
        period: PeriodLike,
        *,
        prices_at: Instant | None = None,
        terms: Mapping[str, Any] | None = None,
        rules: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The month-end of a period computed under other commercial terms and/or with the prices in effect
        at an instant (a what-if); unscoped, records nothing, and a closed period is recomputed rather than
        read back as :meth:`month_end_report` does.

        Args:
            period: the period.
            prices_at: price every part of the period with the prices in effect at this instant.
            terms: commercial terms (the ``terms`` of :meth:`state`, changed) instead of the engine's.
            rules: billing rules (rounding) other than the engine's.

        Returns:
            The report, as :meth:`month_end_report`.
        """
        params: dict[str, Any] = {"period": _period(period)}
        if prices_at is not None:
            params["prices_at"] = instant_text(prices_at)
        if terms is not None:
            params["terms"] = dict(terms)
        if rules is not None:
            params["rules"] = dict(rules)
        return cast("dict[str, Any]", self.call("month_end_in", params))

    def issued_in(self, period: PeriodLike, *, principal: PrincipalLike | None = None) -> list[dict[str, Any]]:
        """The month-end documents of a period as the principal sees them (for statements)."""
        return cast("list[dict[str, Any]]", self._query("issued_in", principal, period=_period(period)))

    def tenant_scope(self, tenant: str) -> dict[str, Any]:
        """The scope of a bulk change on one tenant: the price lists at the tenant and its subscriptions."""
        return cast("dict[str, Any]", self.call("tenant_scope", {"tenant": tenant}))

    def scope_of(self, *, principal: PrincipalLike | None = None) -> dict[str, Any]:
        """The node a principal acts at, ``{"id", "kind"}`` (``NotFoundError`` if it is not in the channel,
        or, once roles are in use, if the principal holds no role there or above)."""
        return cast("dict[str, Any]", self._query("scope_of", principal))

    def visible(self, id: str, *, principal: PrincipalLike | None = None) -> dict[str, Any]:
        """A node the principal may see, ``{"id", "kind"}`` (``NotFoundError`` when it does not exist or lies
        outside the principal's subtree)."""
        return cast("dict[str, Any]", self._query("visible", principal, id=id))

    def authorize_read(self, action: str, *, principal: PrincipalLike | None = None) -> None:
        """Check that a principal may run a query needing ``action`` (``"read_billing"``, ``"read_audit"``,
        ``"read_usage"``, ...) at its scope; raises ``ForbiddenError`` if not."""
        self._query("authorize_read", principal, action=action)

    def billing_rules(self) -> dict[str, Any]:
        """The rules documents are rounded with."""
        return cast("dict[str, Any]", self.call("billing_rules"))

    def export_audit(self) -> dict[str, Any]:
        """Every audit record and the chain's head, to keep elsewhere: ``{"records", "head"}`` (unscoped)."""
        return cast("dict[str, Any]", self.call("export_audit"))

    def tenant_month_end(self, period: PeriodLike, *, principal: PrincipalLike | None = None) -> dict[str, Any]:
        """A month-end cut to tenant invoices (what showback reads)."""
        return cast("dict[str, Any]", self._query("tenant_month_end", principal, period=_period(period)))

    def estimate(
        self,
        node: str,
        items: Sequence[Mapping[str, Any]],
        *,
        at: Instant | None = None,
        principal: PrincipalLike | None = None,
    ) -> list[dict[str, Any]]:
        """The cost calculator: a month of ``[{"meter", "quantity"}]`` priced for a node at an instant."""
        result = self._query("estimate", principal, node=node, items=[dict(item) for item in items], at=self._at(at))
        return cast("list[dict[str, Any]]", result)

    def price_chain(
        self,
        subscription: str,
        meter: str,
        quantity: Decimal | str,
        *,
        at: Instant | None = None,
        principal: PrincipalLike | None = None,
    ) -> list[dict[str, Any]]:
        """One usage quantity priced at every level of a subscription's resale chain, with margins."""
        result = self._query(
            "price_chain", principal, subscription=subscription, meter=meter, quantity=quantity, at=self._at(at)
        )
        return cast("list[dict[str, Any]]", result)

    def preview_change_set(
        self, change_set: Mapping[str, Any], *, principal: PrincipalLike | None = None
    ) -> dict[str, Any]:
        """What a bulk change would do to the last closed period's revenue; records nothing."""
        return cast("dict[str, Any]", self._query("preview_change_set", principal, change_set=dict(change_set)))

    def nodes(self, *, at: Instant | None = None, principal: PrincipalLike | None = None) -> list[dict[str, Any]]:
        """Every node of the principal's subtree, top-down, statuses as of an instant."""
        return cast("list[dict[str, Any]]", self._query("nodes", principal, at=self._at(at)))

    def node(self, id: str, *, at: Instant | None = None, principal: PrincipalLike | None = None) -> dict[str, Any]:
        """One node of the principal's subtree (``NotFoundError`` outside it)."""
        return cast("dict[str, Any]", self._query("node", principal, id=id, at=self._at(at)))

    def subscriptions(
        self, *, at: Instant | None = None, principal: PrincipalLike | None = None
    ) -> list[dict[str, Any]]:
        """The subscriptions of the principal's subtree."""
        return cast("list[dict[str, Any]]", self._query("subscriptions", principal, at=self._at(at)))

    def audit_records(self, *, principal: PrincipalLike | None = None) -> list[dict[str, Any]]:
        """The audit trail, for a principal that may read it."""
        return cast("list[dict[str, Any]]", self._query("audit_records", principal))

    def verify_audit(self, expected_head: Mapping[str, Any] | None = None, *, strict: bool = False) -> dict[str, Any]:
        """Walk the audit chain with the event log; ``strict``: a broken chain raises ``AuditError``."""
        params: dict[str, Any] = {"strict": strict}
        if expected_head is not None:
            params["expected_head"] = dict(expected_head)
        return cast("dict[str, Any]", self.call("verify_audit", params))

    def budget_statuses(
        self, period: PeriodLike, *, at: Instant | None = None, principal: PrincipalLike | None = None
    ) -> list[dict[str, Any]]:
        """Budgets of the principal's subtree in a period as of an instant: actual, forecast, state."""
        result = self._query("budget_statuses", principal, period=_period(period), at=self._at(at))
        return cast("list[dict[str, Any]]", result)

    def alerts(
        self, *, include_resolved: bool = False, principal: PrincipalLike | None = None
    ) -> list[dict[str, Any]]:
        """Alerts of the principal's subtree: the open ones (acknowledged included), or all."""
        return cast("list[dict[str, Any]]", self._query("alerts", principal, include_resolved=include_resolved))

    def findings(self, *, at: Instant | None = None) -> list[dict[str, Any]]:
        """What the alert rules find at an instant, without recording anything (unscoped)."""
        return cast("list[dict[str, Any]]", self.call("findings", {"at": self._at(at)}))

    def job_runs(self, *, limit: int | None = None, principal: PrincipalLike | None = None) -> list[dict[str, Any]]:
        """Recorded job runs, newest first (100 unless ``limit`` says); platform principals only."""
        return cast("list[dict[str, Any]]", self._query("job_runs", principal, limit=limit))

    def dashboard(
        self, period: PeriodLike, *, at: Instant | None = None, principal: PrincipalLike | None = None
    ) -> dict[str, Any]:
        """Dashboard data of the principal's subtree: month to date, projection, top tenants and meters, cost
        by day and region, invoices by state, commissions, region health, open alerts, budgets."""
        return cast("dict[str, Any]", self._query("dashboard", principal, period=_period(period), at=self._at(at)))

    def verify_documents(self) -> dict[str, Any]:
        """Check every issued document's stored body against its recorded hash: ``{"intact", "altered"}``."""
        return cast("dict[str, Any]", self.call("verify_documents"))

    def closing_months(self, *, at: Instant | None = None) -> list[str]:
        """The months (``"YYYY-MM"``, oldest first) whose budgets an evaluation at ``at`` checks once more as of
        their end: every month that ended after the latest complete evaluation (unscoped)."""
        return cast("list[str]", self.call("closing_months", {"at": self._at(at)}))

    def checkpoints(self) -> list[dict[str, Any]]:
        """The ingestion checkpoints of every region and subscriber."""
        return cast("list[dict[str, Any]]", self.call("checkpoints"))

    def state(self) -> dict[str, Any]:
        """The engine's state (channel, catalogue, terms, policies, ...), unscoped."""
        return cast("dict[str, Any]", self.call("state"))

    def stored_usage(self, period: PeriodLike, *, principal: PrincipalLike | None = None) -> list[UsageRecord]:
        """The usage records stored for a period, of the principal's subscriptions (at the platform, also
        those of subscriptions not yet onboarded), as dicts.

        Args:
            period: the period (records whose usage starts in it).
            principal: who reads (``None``: the engine's principal).

        Returns:
            The records, quantities as ``Decimal`` and instants as aware ``datetime``.
        """
        return cast("list[UsageRecord]", self._query("stored_usage", principal, period=_period(period)))

    # ---- DataFrames and Arrow tables (pandas and pyarrow are imported on first use).

    def usage_frame(self, period: PeriodLike, *, principal: PrincipalLike | None = None) -> pandas.DataFrame:
        """The stored usage of a period as a pandas DataFrame (``quantity`` as ``Decimal`` objects, times
        as ``datetime64[us, UTC]``): :meth:`usage_table` converted by pyarrow's ``to_pandas``."""
        return cast("pandas.DataFrame", self.usage_table(period, principal=principal).to_pandas())

    def usage_table(self, period: PeriodLike, *, principal: PrincipalLike | None = None) -> pyarrow.Table:
        """The stored usage of a period (:meth:`stored_usage`'s records) as a pyarrow Table: the columns of
        :data:`cms.frames.USAGE_COLUMNS`, ``quantity`` as ``decimal128(38, s)`` (``s`` the largest scale of
        its values, every value exact), ``start`` and ``end`` as ``timestamp[us, UTC]``.

        The columns are laid out in Rust and imported by pyarrow through the Arrow C stream interface: no
        JSON and no Python object per value on the way.
        """
        import pyarrow as pa

        params = {"principal": self._who(principal), "period": _period(period)}
        return pa.table(self._session.stored_usage_arrow(encode(params)))

    def invoice_lines_frame(self, period: PeriodLike) -> pandas.DataFrame:
        """The month-end's invoice lines of a period (:meth:`month_end_report`), one row per line with
        its invoice's issuer, buyer and currency, as a pandas DataFrame (amounts as ``Decimal``)."""
        return cast("pandas.DataFrame", self.invoice_lines_table(period).to_pandas())

    def invoice_lines_table(self, period: PeriodLike) -> pyarrow.Table:
        """:meth:`invoice_lines_frame` as a pyarrow Table (amounts as ``decimal128``)."""
        from .frames import invoice_lines_table

        return invoice_lines_table(self.month_end_report(period))
