"""The garbage-collector tuning of worker processes (run in a child process: it is global)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from app.core.gc_tuning import YOUNG_THRESHOLD

ROOT = Path(__file__).resolve().parents[3]


def test_tune_gc_freezes_start_up_objects_and_raises_the_young_threshold() -> None:
    script = (
        "import gc, json\n"
        "before = gc.get_threshold()\n"
        "from app.core.gc_tuning import tune_gc\n"
        "tune_gc()\n"
        "print(json.dumps({'before': before, 'after': gc.get_threshold(),"
        " 'frozen': gc.get_freeze_count()}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    figures = json.loads(result.stdout)
    assert figures["after"] == [YOUNG_THRESHOLD, *figures["before"][1:]]
    assert figures["frozen"] > 1000  # the interpreter's and the imports' objects


@pytest.mark.parametrize("own_process", [True, False])
def test_only_a_worker_with_a_process_of_its_own_tunes_the_collector(
    monkeypatch: pytest.MonkeyPatch, own_process: bool
) -> None:
    import app.worker as worker

    calls: list[bool] = []
    monkeypatch.setattr(worker, "tune_gc", lambda: calls.append(True))
    monkeypatch.setattr(worker, "_handlers", list)
    settings: Any = type("S", (), {"worker_poll_interval_s": 0.01})()
    worker.run_worker(
        engine=None,  # type: ignore[arg-type]  # no handler touches it
        settings=settings,
        stop=threading.Event(),
        once=True,
        own_process=own_process,
    )
    assert calls == ([True] if own_process else [])
