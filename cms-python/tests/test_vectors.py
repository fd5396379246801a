"""Every conformance vector, through the Python binding: the case files (tests/vectors/*.json) as
``evaluate_vector`` calls, and the call files (tests/vectors/calls/*.json) step by step on a fresh engine,
on a memory store and on a SQLite file (reopened where a case says so), as cms-api/tests/vectors.rs runs
them in Rust. Each result is checked as the facade's JSON and as the Python values ``cms`` makes of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import cms
from cms import _cms
from cms._convert import decode, encode
from support import Mismatch, call_files, case_files, cases, error_matches, matches, replay

CASES = [(path.name, index, case) for path in case_files() for index, case in enumerate(cases(path))]
CALLS = [(path.name, index, case) for path in call_files() for index, case in enumerate(cases(path))]


def _label(name: str, index: int, case: dict[str, Any]) -> str:
    return f"{name}#{index}"


@pytest.mark.parametrize(("name", "index", "case"), CASES, ids=[_label(*entry) for entry in CASES])
def test_case_file_vector(name: str, index: int, case: dict[str, Any]) -> None:
    params = {"case": case}
    expect = case["expect"]
    try:
        raw = _cms.call("evaluate_vector", encode(params))
    except cms.CmsError as error:
        assert "error" in expect, f"unexpected error {error.code}: {error}"
        error_matches(error, expect["error"])
        return
    assert "error" not in expect, f"expected error {expect.get('error')}, got {raw[:300]}"
    matches(json.loads(raw), expect)
    matches(decode(raw), expect)
    # The public function is the same call.
    matches(cms.call("evaluate_vector", params), expect)
    matches(cms.evaluate_vector(case), expect)


@pytest.mark.parametrize("backing", ["memory", "sqlite"])
@pytest.mark.parametrize(("name", "index", "case"), CALLS, ids=[_label(*entry) for entry in CALLS])
def test_call_file_vector(name: str, index: int, case: dict[str, Any], backing: str, tmp_path: Path) -> None:
    try:
        passed = replay(case, backing, tmp_path)
    except Mismatch as mismatch:
        pytest.fail(f"{name} #{index} ({case.get('name', '')}) on {backing}: {mismatch}")
    assert passed >= 1


def test_the_vectors_are_all_there() -> None:
    # The case files hold over 60 cases and the call files well over 100 steps (as the Rust runner
    # requires): an empty or truncated folder must fail here, not pass with nothing run.
    assert len(CASES) > 60, len(CASES)
    steps = sum(len(case.get("steps", [])) or 1 for _, _, case in CALLS)
    assert steps > 100, steps
    assert {name for name, _, _ in CALLS} >= {"errors.json", "facade.json", "invoicing.json", "month.json"}


def test_call_reaches_every_method() -> None:
    # Every method of methods() is reachable through Cms.call (session methods) or cms.call (free ones):
    # a call with no parameters either runs or names the missing parameter, never "no such method".
    engine = cms.Cms(principal="vectors")
    listed = cms.methods()
    assert len(listed) >= 40
    for method in listed:
        name = method["name"]
        target = engine.call if method["session"] else cms.call
        try:
            target(name, None)
        except cms.CmsError as error:
            assert "no such method" not in str(error), name
            assert "needs a session" not in str(error), name
    with pytest.raises(cms.InputError) as raised:
        engine.call("no_such_method")
    assert raised.value.code == "invalid_value"
    assert raised.value.location == "call field method"
