"""The one place where Python values and the facade's JSON meet.

The engine speaks JSON (``cms_api``): decimals are strings (``"0.05"``), instants RFC 3339 strings
(``"2026-10-01T00:00:00Z"``), dates ``YYYY-MM-DD``. This module turns Python values into that JSON
(:func:`encode`) and that JSON into Python values (:func:`decode`); nothing else in the package converts.

**In** (parameters):

- ``decimal.Decimal`` -> its exact text (``Decimal("1E+2")`` -> ``"100"``); NaN and infinities are refused
  (``InputError``, code ``bad_decimal``). Strings pass as they are, so ``"0.05"`` works too.
- ``float`` is passed as a JSON number, which the engine refuses (``bad_decimal``): money never travels
  as a float. Integers (counts, scales) pass.
- aware ``datetime`` -> RFC 3339 in UTC (``...Z``, microseconds kept); a naive ``datetime`` is refused
  (``InputError``, code ``bad_timestamp``): the engine cannot guess its zone. ``date`` -> ``YYYY-MM-DD``.
- ``os.PathLike`` -> its path; tuples -> lists; mappings -> objects.

**Out** (results), by the field's name, since JSON has no decimal type:

- a string under a key of :data:`DECIMAL_KEYS` that is a plain decimal (``-?digits(.digits)?``) becomes a
  ``decimal.Decimal`` with the same digits (scale kept: ``"0.50"`` -> ``Decimal("0.50")``); lists of such
  strings too. Under a key of :data:`DECIMAL_MAP_KEYS` (maps to decimals, e.g. ``totals`` per currency),
  every such string value of the map (and of maps inside it) becomes a ``Decimal``. The keys are the
  names of the core's ``Decimal`` fields; ``tests/test_convert.py`` replays every conformance vector and
  fails if a result holds a decimal-looking string under any other key it does not list as text.
- text all the same: a digit string longer than 30 digits (a ``rust_decimal`` has at most 29 significant
  digits, so that is a hash, e.g. the audit trail's all-zero genesis digest under ``before``), and
  ``from`` and ``to`` of a channel move (an object with a ``node`` key), which are node ids.
- a string that is a whole RFC 3339 instant (``YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM)``) becomes an
  aware ``datetime`` in UTC; one whose fraction has non-zero digits past microseconds stays a string
  (Python's ``datetime`` would round it).
- a ``YYYY-MM-DD`` string under a key of :data:`DATE_KEYS` becomes a ``datetime.date``.
- JSON numbers are integers (counts); a JSON number with a fraction, which the engine never writes,
  would become a ``Decimal``, never a ``float``.

Periods stay strings (``"2026-10"``), or ``{"start", "end"}`` objects of datetimes.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ._cms import InputError

__all__ = ["DATE_KEYS", "DECIMAL_KEYS", "DECIMAL_MAP_KEYS", "decode", "encode", "instant_text"]

#: Keys whose plain-decimal string values are decimals: the names of the core's ``Decimal`` fields.
DECIMAL_KEYS: frozenset[str] = frozenset(
    """
    actual after amount amount_exact anomaly_factor anomaly_min_amount average base basis before billed_cost
    bought breach_percent change clawbacks commission commissions commitment commitment_discount_quantity
    consumed_quantity contracted_cost contracted_unit_price cost cost_delta credit debit delta direct
    effective_cost floor forecast forecast_percent four_eyes_above from fx_rate invoiced limit list_cost
    list_unit_price margin markup minimum_commitment new new_quantity old old_quantity other overhead
    override_rate overrides pass_through_uplift percent price pricing_currency_contracted_unit_price
    pricing_currency_effective_cost pricing_currency_list_unit_price pricing_quantity quantity quota_percent
    rate reallocated retained revenue shared size sold subtotal tax_rate to total uplift used
    warning_percent
    """.split()
)

#: Keys whose values are maps to decimals (``{"USD": "2.81"}``, quotas, thresholds, weights, rates).
DECIMAL_MAP_KEYS: frozenset[str] = frozenset(
    "totals quotas override_rates thresholds weights rates".split()
)

#: Keys whose ``YYYY-MM-DD`` values are calendar dates.
DATE_KEYS: frozenset[str] = frozenset({"due", "day"})

_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_INSTANT = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?(Z|[+-][0-9]{2}:[0-9]{2})"
)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# A rust_decimal's text: at most 29 significant digits, 28 after the point ("0." and 28 digits, or 29
# digits and a point), and a sign. Longer digit strings are hashes.
_MAX_DECIMAL_TEXT = 32


def _input_error(code: str, message: str) -> InputError:
    error = InputError(message)
    error.code = code
    error.location = None
    error.source = None
    return error


def instant_text(value: _dt.datetime | str) -> str:
    """An instant as the engine reads it: an aware ``datetime`` as RFC 3339 in UTC, a string as given.

    Args:
        value: an aware ``datetime`` or an RFC 3339 string.

    Returns:
        ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``, or the string unchanged.

    Raises:
        InputError: ``bad_timestamp`` for a naive ``datetime``.
    """
    if isinstance(value, str):
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise _input_error(
            "bad_timestamp",
            f"naive datetime {value.isoformat()!r}: pass an aware datetime (tzinfo=timezone.utc) "
            "or an RFC 3339 string",
        )
    utc = value.astimezone(_dt.timezone.utc)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"


def _decimal_text(value: Decimal) -> str:
    if not value.is_finite():
        raise _input_error("bad_decimal", f"{value} is not a finite decimal")
    return format(value, "f")


def _default(value: object) -> object:
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, _dt.datetime):
        return instant_text(value)
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot pass {type(value).__name__} to the engine: {value!r}")


def encode(params: object) -> str:
    """Python parameters as the facade's JSON text.

    Args:
        params: a mapping of named parameters (or ``None`` for none), made of JSON-able values,
            ``Decimal``, ``datetime``, ``date`` and paths.

    Returns:
        The JSON text.
    """
    if params is None:
        return "null"
    return json.dumps(params, default=_default, ensure_ascii=False, allow_nan=False)


def _instant(text: str) -> _dt.datetime | str:
    match = _INSTANT.fullmatch(text)
    if match is None:
        return text
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = 0
    if fraction:
        if fraction[6:].strip("0"):
            return text  # finer than a microsecond: keep the exact text
        micro = int(fraction[:6].ljust(6, "0"))
    if zone == "Z":
        tz = _dt.timezone.utc
    else:
        sign = -1 if zone[0] == "-" else 1
        tz = _dt.timezone(sign * _dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    try:
        value = _dt.datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=tz
        )
    except ValueError:
        return text
    return value.astimezone(_dt.timezone.utc)


def _to_decimal(value: Any) -> Any:
    if isinstance(value, str) and _PLAIN_DECIMAL.fullmatch(value) and len(value) <= _MAX_DECIMAL_TEXT:
        return Decimal(value)
    if isinstance(value, list):
        return [_to_decimal(item) for item in value]
    return value


def _map_to_decimal(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _map_to_decimal(item) for key, item in value.items()}
    return _to_decimal(value)


def _object(fields: dict[str, Any]) -> dict[str, Any]:
    is_move = "node" in fields
    for key, value in fields.items():
        if isinstance(value, str):
            if key in DECIMAL_KEYS and not (is_move and key in ("from", "to")):
                fields[key] = _to_decimal(value)
            elif key in DATE_KEYS and _DATE.fullmatch(value):
                fields[key] = _dt.date.fromisoformat(value)
            elif key in DECIMAL_MAP_KEYS:
                fields[key] = _to_decimal(value)
            else:
                fields[key] = _instant(value)
        elif isinstance(value, list):
            if key in DECIMAL_KEYS or key in DECIMAL_MAP_KEYS:
                fields[key] = _to_decimal(value)
            else:
                fields[key] = [_instant(item) if isinstance(item, str) else item for item in value]
        elif isinstance(value, dict) and key in DECIMAL_MAP_KEYS:
            fields[key] = _map_to_decimal(value)
    return fields


def decode(text: str) -> Any:
    """The facade's JSON text as Python values (see the module's rules).

    Args:
        text: a result of the engine.

    Returns:
        dicts, lists, ``str``, ``int``, ``bool``, ``None``, ``Decimal``, ``datetime`` and ``date``.
    """
    value = json.loads(text, object_hook=_object, parse_float=Decimal)
    if isinstance(value, str):
        return _instant(value)
    if isinstance(value, list):
        return [_instant(item) if isinstance(item, str) else item for item in value]
    return value
