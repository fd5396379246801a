"""Shared helpers of the pytest suite: paths, the conformance vectors' matching rules and their runner.

The rules are those of ``cms-api/src/vectors.rs`` (the reference runner), so every language checks the
same cases the same way:

- every field of an expected object must be in the actual object with a matching value (other fields are
  allowed; an expected ``null`` also matches a missing field); arrays match element by element and have
  the same length; two strings that are both plain decimals (``-?digits(.digits)?``) match when equal as
  numbers; anything else must be equal;
- a step with ``error`` must fail with that ``code`` (and a message containing ``message_contains``).

The Python runner checks each result twice: the facade's JSON text against those rules, and the Python
values ``cms`` makes of it (``Decimal``, ``datetime``) against the same expectation, where a ``Decimal``
must equal the expected decimal string and a ``datetime`` the expected instant.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional

import cms
from cms import _cms
from cms._convert import decode, encode

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors"
SCENARIOS = ROOT / "tests" / "scenarios"
BENCH = ROOT.parent / "shared" / "bench"

_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def plain_decimal(text: str) -> Optional[Decimal]:
    """The decimal a plain decimal string spells, else ``None``."""
    return Decimal(text) if _PLAIN_DECIMAL.fullmatch(text) else None


def parse_instant(text: str) -> Optional[dt.datetime]:
    """An RFC 3339 instant as an aware datetime, else ``None``."""
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


class Mismatch(AssertionError):
    """A result that does not match its expectation; the message names the path of the difference."""


def _scalar_equal(actual: object, expected: object) -> bool:
    # JSON's true is not 1: keep booleans apart from numbers, as serde_json's Value does.
    if isinstance(actual, bool) or isinstance(expected, bool):
        return type(actual) is type(expected) and actual == expected
    return actual == expected


def matches(actual: Any, expected: Any, path: str = "result") -> None:
    """Check ``actual`` against ``expected`` with the vectors' rules; raise :class:`Mismatch` if not.

    ``actual`` may be the facade's JSON values or the Python values ``cms`` makes of them.
    """
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            raise Mismatch(f"{path}: expected an object {expected}, got {actual!r}")
        for key, value in expected.items():
            inner = f"{path}.{key}"
            if key in actual:
                matches(actual[key], value, inner)
            elif value is not None:
                raise Mismatch(f"{inner}: missing, expected {value!r}")
        return
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            raise Mismatch(f"{path}: expected {len(expected)} items, got {actual!r}")
        for index, (found, value) in enumerate(zip(actual, expected)):
            matches(found, value, f"{path}[{index}]")
        return
    if isinstance(expected, str):
        if isinstance(actual, Decimal):
            wanted = plain_decimal(expected)
            if wanted is None or wanted != actual:
                raise Mismatch(f"{path}: expected {expected!r}, got Decimal {actual}")
            return
        if isinstance(actual, dt.datetime):
            if parse_instant(expected) != actual:
                raise Mismatch(f"{path}: expected {expected!r}, got datetime {actual.isoformat()}")
            return
        if isinstance(actual, dt.date):
            if expected != actual.isoformat():
                raise Mismatch(f"{path}: expected {expected!r}, got date {actual}")
            return
        if isinstance(actual, str):
            left, right = plain_decimal(actual), plain_decimal(expected)
            if actual == expected or (left is not None and right is not None and left == right):
                return
        raise Mismatch(f"{path}: expected {expected!r}, got {actual!r}")
    if not _scalar_equal(actual, expected):
        raise Mismatch(f"{path}: expected {expected!r}, got {actual!r}")


def error_matches(error: cms.CmsError, expected: dict[str, Any]) -> None:
    """Check a raised error against ``{"code", "message_contains"?}``, and that its class is its family's."""
    if error.code != expected["code"]:
        raise Mismatch(f"expected error {expected['code']}, got {error.code}: {error}")
    if type(error) is not _cms.error_class(error.code):
        raise Mismatch(f"{error.code} raised {type(error).__name__}, not {_cms.error_class(error.code).__name__}")
    fragment = expected.get("message_contains")
    if fragment is not None and fragment not in str(error):
        raise Mismatch(f"message {str(error)!r} lacks {fragment!r}")


def substitute(value: Any, tokens: dict[str, str]) -> Any:
    """Replace each token (``{vectors}``, ``{scratch}``, ``{http}``) in every string of ``value``."""
    if isinstance(value, str):
        for token, text in tokens.items():
            value = value.replace(token, text)
        return value
    if isinstance(value, list):
        return [substitute(item, tokens) for item in value]
    if isinstance(value, dict):
        return {key: substitute(item, tokens) for key, item in value.items()}
    return value


class HttpFixture:
    """Canned replies on 127.0.0.1 (a case's ``http``): the first reply whose ``path`` starts the request's
    path answers it, with ``{http}`` in its body standing for the server's URL; anything else is a 404."""

    def __init__(self, replies: list[dict[str, Any]]) -> None:
        fixture = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                path = self.path.split("?", 1)[0]
                status, body = 404, "no fixture reply for this path"
                for reply in fixture.replies:
                    if path.startswith(reply["path"]):
                        status, body = int(reply["status"]), str(reply["body"]).replace("{http}", fixture.url)
                        break
                data = body.encode("utf-8")
                self.send_response(status, "Fixture")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
                self.close_connection = True

            do_GET = _answer
            do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.replies = replies
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def case_files() -> list[Path]:
    """The case files ``tests/vectors/*.json``, by name."""
    return sorted(VECTORS.glob("*.json"))


def call_files() -> list[Path]:
    """The call files ``tests/vectors/calls/*.json``, by name."""
    return sorted((VECTORS / "calls").glob("*.json"))


def cases(path: Path) -> list[dict[str, Any]]:
    """The cases of a vector file."""
    return list(json.loads(path.read_text(encoding="utf-8"))["cases"])


def store_of(spec: Any) -> cms.MemoryStore | cms.SqliteStore:
    """The store a case's ``open`` spec names."""
    if spec == "memory":
        return cms.MemoryStore()
    return cms.SqliteStore(spec["sqlite"])


#: When a list, every successful call's (method, JSON text) is appended to it (for tests of the results).
RECORDED: Optional[list[tuple[str, str]]] = None


def checked_call(engine: cms.Cms, method: str, params: Any, step: dict[str, Any]) -> int:
    """Run one call as ``Cms.call`` does (encode, native call, decode) and check the step's expectation on
    both the JSON and the Python values. Returns 1 (one step passed)."""
    try:
        raw = engine._session.call(method, encode(params))
    except cms.CmsError as error:
        if "error" not in step:
            raise Mismatch(f"unexpected error {error.code}: {error}") from error
        error_matches(error, step["error"])
        return 1
    if RECORDED is not None:
        RECORDED.append((method, raw))
    if "error" in step:
        raise Mismatch(f"expected error {step['error']['code']}, got a result: {raw[:500]}")
    if "result" in step:
        matches(json.loads(raw), step["result"])
        matches(decode(raw), step["result"])
    return 1


def replay(case: dict[str, Any], backing: str, scratch: Path) -> int:
    """Replay one case of a call file on a fresh engine (``backing``: ``memory`` or ``sqlite``, for cases
    that name no store); returns how many steps passed, raising :class:`Mismatch` at the first failure."""
    fixture = HttpFixture(case["http"]) if "http" in case else None
    try:
        tokens = {"{vectors}": str(VECTORS), "{scratch}": str(scratch), "{http}": fixture.url if fixture else ""}
        if "open" in case:
            store = store_of(substitute(case["open"], tokens))
        elif backing == "sqlite":
            store = cms.SqliteStore(scratch / "cms.db")
        else:
            store = cms.MemoryStore()
        if "open_error" in case:
            try:
                cms.Cms(store)
            except cms.CmsError as error:
                error_matches(error, case["open_error"])
                return 1
            raise Mismatch(f"open: expected error {case['open_error']['code']}, the store opened")
        engine = cms.Cms(store, principal="vectors")
        passed = 0
        try:
            for index, step in enumerate(case["steps"]):
                if "reopen" in step:
                    if isinstance(store, cms.SqliteStore):
                        engine.close()
                        engine = cms.Cms(store, principal="vectors")
                    continue
                params = substitute(step.get("params"), tokens)
                try:
                    passed += checked_call(engine, step["method"], params, step)
                except Mismatch as mismatch:
                    raise Mismatch(f"step {index} ({step['method']}): {mismatch}") from None
        finally:
            engine.close()
        return passed
    finally:
        if fixture is not None:
            fixture.close()


def walk_strings(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """Every (key, string) pair of a JSON value; list items carry their list's key."""
    if isinstance(value, dict):
        for inner, item in value.items():
            yield from walk_strings(item, inner)
    elif isinstance(value, list):
        for item in value:
            yield from walk_strings(item, key)
    elif isinstance(value, str):
        yield key, value


def python() -> str:
    """The interpreter running the tests (the venv's)."""
    return sys.executable


def cms_cli() -> list[str]:
    """How to run the ``cms`` command: ``$CMS_CLI`` if set (scripts/test.sh sets the binary it just built),
    else ``cargo run -p cms-cli`` (which rebuilds it if stale)."""
    explicit = os.environ.get("CMS_CLI")
    if explicit:
        return [explicit]
    cargo = shutil.which("cargo") or "cargo"
    return [cargo, "run", "--quiet", "--locked", "--manifest-path", str(ROOT / "Cargo.toml"), "-p", "cms-cli", "--"]


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a command, failing with its output if it fails."""
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise AssertionError(f"{command} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done
