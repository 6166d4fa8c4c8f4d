"""Moved to `tests/support/factories.py` (the one test-data kit); kept for branches in flight."""

from tests.support.factories import (  # noqa: F401
    add_label,
    boolean_answer,
    bulk_rollouts,
    bulk_run,
    comments_answer,
    make_legal_rollouts,
    make_pair_run,
    make_pairs,
    make_rollouts,
    make_run,
    make_version,
)
