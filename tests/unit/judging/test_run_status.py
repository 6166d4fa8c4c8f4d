"""A finished run's state follows from its verdicts: a run whose every call failed is not green."""

from __future__ import annotations

import pytest

from app.judging.status import RunStatus, finished_message, finished_status, short_error


@pytest.mark.parametrize(
    ("done", "errors", "status"),
    [
        (10, 0, RunStatus.COMPLETED),
        (10, 1, RunStatus.WITH_ERRORS),
        (10, 9, RunStatus.WITH_ERRORS),
        (10, 10, RunStatus.FAILED),
        (1, 1, RunStatus.FAILED),
        (0, 0, RunStatus.COMPLETED),
    ],
)
def test_finished_status(done: int, errors: int, status: RunStatus) -> None:
    assert finished_status(done, errors) is status


def test_messages_name_the_first_error_shortly() -> None:
    error = "HTTP 401 from http://judge/v1: {\n\x00 'error': 'bad key' }" + "x" * 1000
    message = finished_message(RunStatus.FAILED, 3, 3, error)
    assert message.startswith("Every judge call failed (3 of 3)")
    assert "The first error: HTTP 401 from http://judge/v1: { 'error': 'bad key' }" in message
    assert "\x00" not in message and "\n" not in message and len(message) < 500
    assert finished_message(RunStatus.WITH_ERRORS, 10, 2, None).startswith("2 of 10")
    assert finished_message(RunStatus.COMPLETED, 10, 0, None) == ""
    assert short_error("a" * 400).endswith("…") and len(short_error("a" * 400)) == 300


def test_labels_say_it_in_words() -> None:
    assert RunStatus.WITH_ERRORS.label == "completed with errors"
    assert RunStatus("failed").label == "failed"
