"""The worker's job kinds are registered explicitly: a broken job module fails loudly."""

import sys

import pytest

import app.worker as worker


def test_every_job_kind_is_registered_in_priority_order() -> None:
    names = [name for name, _ in worker._handlers()]
    assert names[:3] == ["rollout-import", "judge-prepare", "judge-run"]
    assert len(names) == len(set(names))


def test_a_job_module_that_fails_to_import_stops_the_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A None entry in sys.modules makes the import raise ImportError, as a broken module would.
    monkeypatch.setitem(sys.modules, "app.judging.jobs", None)
    with pytest.raises(ImportError):
        worker._handlers()


def test_job_modules_do_not_import_the_worker() -> None:
    """The jobs take their context from app.core.jobs, so worker → jobs is the only edge."""
    import app.judging.jobs
    import app.rollouts.jobs

    for module in (app.judging.jobs, app.rollouts.jobs):
        assert "app.worker" not in {
            getattr(value, "__module__", "") for value in vars(module).values()
        }
