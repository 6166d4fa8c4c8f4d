"""Moved to `tests/support/factories.py` (the one test-data kit); kept for branches in flight.

`make_rollouts` / `make_pairs` here were the bulk, id-returning builders: `insert_rollouts`
and `insert_pairs` in the kit.
"""

from tests.support.factories import (  # noqa: F401
    LOCAL_JUDGES,
    fast_options,
    make_judge_config,
    make_version,
    start_runs,
)
from tests.support.factories import insert_pairs as make_pairs  # noqa: F401
from tests.support.factories import insert_rollouts as make_rollouts  # noqa: F401
