"""The GIL is released around long work: while a month-end runs in a thread (through ``cms.month_end`` and
through an engine's ``call``), Python keeps running in the main thread; one engine used from several
threads serialises its calls safely."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

import cms


def _longest_pause_while(work: Callable[[], Any]) -> tuple[float, float, Any]:
    """Run ``work`` in a thread while the main thread ticks; return the work's duration, the longest gap
    between two ticks while it ran, and its result. Were the GIL held, the main thread could not tick at
    all while the work ran: the longest gap would be about the work's duration."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(work()))
    ticks = [time.perf_counter()]
    started = time.perf_counter()
    thread.start()
    while thread.is_alive():
        sum(range(2_000))  # Python work that needs the GIL
        ticks.append(time.perf_counter())
    thread.join()
    duration = time.perf_counter() - started
    gaps = [later - earlier for earlier, later in zip(ticks, ticks[1:])]
    return duration, max(gaps), result[0]


def _repeat_for(seconds: float, work: Callable[[int], Any]) -> Callable[[], Any]:
    """``work`` run again and again (with the round number) until ``seconds`` have passed, returning the last
    result: how long one run takes depends on the machine, and a pause can only be told from the work when
    the work lasts well beyond the scheduler's time slice."""

    def repeated() -> Any:
        started = time.perf_counter()
        round_number = 0
        while True:
            result = work(round_number)
            round_number += 1
            if time.perf_counter() - started >= seconds:
                return result

    return repeated


def test_month_end_releases_the_gil(workload: Path, tmp_path: Path) -> None:
    duration, longest, summary = _longest_pause_while(
        _repeat_for(1.0, lambda round_number: cms.month_end(workload, tmp_path / f"free{round_number}", threads=1))
    )
    assert summary["usage_rows"] > 70_000
    assert duration >= 1.0
    assert longest < duration / 3, f"Python paused {longest:.2f} s of the month-end's {duration:.2f} s"


def test_engine_calls_release_the_gil(workload: Path, tmp_path: Path) -> None:
    with cms.Cms(principal="ops") as engine:
        def month_end(round_number: int) -> Any:
            out = tmp_path / f"session{round_number}"
            return engine.call("month_end", {"data": str(workload), "out": str(out), "threads": 1})

        duration, longest, summary = _longest_pause_while(_repeat_for(1.0, month_end))
    assert summary["invoices"] == 3
    assert duration >= 1.0
    assert longest < duration / 3, f"Python paused {longest:.2f} s of the call's {duration:.2f} s"


def test_one_engine_from_many_threads() -> None:
    with cms.Cms(principal="ops") as engine:
        errors: list[BaseException] = []

        def onboard(index: int) -> None:
            try:
                engine.execute(
                    {"type": "node_added", "id": f"p{index}", "kind": "partner", "parent": None, "name": f"P{index}"},
                    at="2026-09-01T00:00:00Z",
                )
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=onboard, args=(index,)) for index in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        ids = sorted(node["id"] for node in engine.nodes(at="2026-09-02T00:00:00Z"))
        assert ids == sorted(["platform", *(f"p{index}" for index in range(16))])
        assert engine.verify_audit(strict=True)["broken"] is None
