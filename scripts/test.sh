#!/usr/bin/env bash
# The test command. Installs the project into .venv, then: ruff, mypy, `alembic check`, unit tests,
# and the integration + browser suites on SQLite — and again on PostgreSQL when
# RS_TEST_POSTGRES_URL is set (CI sets it). Extra arguments go to every pytest run.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install -q -e '.[dev]'

echo "== lint: ruff, mypy"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
"$VENV/bin/mypy" app

echo "== licences: no copyleft (GPL/AGPL) package among the runtime dependencies"
"$VENV/bin/python" scripts/check_licences.py

echo "== layers: import-linter contracts (pyproject [tool.importlinter], docs/architecture.md)"
"$VENV/bin/lint-imports" --no-cache

echo "== migrations: alembic check (models and migrations agree)"
CHECK_DB=$(mktemp -d)/check.db
RS_DATABASE_URL="sqlite:///$CHECK_DB" "$VENV/bin/alembic" upgrade head
RS_DATABASE_URL="sqlite:///$CHECK_DB" "$VENV/bin/alembic" check

# Tests run side by side in RS_TEST_WORKERS processes (pytest-xdist; default: one per core). Each
# worker migrates its own database (a file on SQLite, a new database on PostgreSQL), and a test
# file stays on one worker so its module fixtures start once.
WORKERS=${RS_TEST_WORKERS:-$(nproc)}
PYTEST=("$VENV/bin/pytest" -q -p no:cacheprovider -n "$WORKERS" --dist loadfile)
export AWS_EC2_METADATA_DISABLED=true

echo "== unit tests"
"${PYTEST[@]}" tests/unit "$@"

# Browser tests run in their own pytest session: Playwright's sync API keeps an event loop running
# in the worker's main thread for the whole session, which would break later asyncio.run() calls.
#
# With RS_TEST_POSTGRES_URL set, the SQLite and PostgreSQL passes run side by side (each with its
# own workers and databases): a good part of each pass waits on subprocesses (the CLI, the local
# LLM, Chromium) or on the database server, and the other pass fills that time. Each pass's output
# is printed whole when it ends. RS_TEST_SERIAL=1 runs them one after the other instead.
LOGS=$(mktemp -d)
run_pass() {  # run_pass NAME DB SUITE [pytest args...]: one pytest session, its log in $LOGS/NAME
  local name=$1 db=$2 suite=$3
  shift 3
  local started=$SECONDS status=0
  # Its own temporary folder: pytest's default one is shared, and cleaned, by every session.
  RS_TEST_DB=$db "${PYTEST[@]}" --basetemp="$LOGS/tmp-$db-${suite//\//-}" "$suite" "$@" \
    >"$LOGS/$name.log" 2>&1 || status=$?
  echo "$status" >"$LOGS/$name.rc"
  echo "== $name: exit $status after $((SECONDS - started)) s"
}
show_passes() {  # show_passes NAME...: print each pass's log; fail if any pass failed
  local failed=0 name
  for name in "$@"; do
    echo "== $name"
    cat "$LOGS/$name.log"
    [ "$(cat "$LOGS/$name.rc")" = "0" ] || failed=1
  done
  return $failed
}

if [ -n "${RS_TEST_POSTGRES_URL:-}" ] && [ "${RS_TEST_SERIAL:-0}" != "1" ]; then
  echo "== integration tests on SQLite and on PostgreSQL, side by side"
  run_pass "integration tests on SQLite" sqlite tests/integration "$@" &
  run_pass "integration tests on PostgreSQL" postgres tests/integration "$@" &
  wait
  show_passes "integration tests on SQLite" "integration tests on PostgreSQL"
  echo "== browser tests on SQLite and on PostgreSQL, side by side"
  run_pass "browser tests on SQLite" sqlite tests/e2e "$@" &
  run_pass "browser tests on PostgreSQL" postgres tests/e2e "$@" &
  wait
  show_passes "browser tests on SQLite" "browser tests on PostgreSQL"
else
  echo "== integration tests on SQLite"
  RS_TEST_DB=sqlite "${PYTEST[@]}" tests/integration "$@"
  echo "== browser tests on SQLite"
  RS_TEST_DB=sqlite "${PYTEST[@]}" tests/e2e "$@"
  if [ -n "${RS_TEST_POSTGRES_URL:-}" ]; then
    echo "== integration tests on PostgreSQL"
    RS_TEST_DB=postgres "${PYTEST[@]}" tests/integration "$@"
    echo "== browser tests on PostgreSQL"
    RS_TEST_DB=postgres "${PYTEST[@]}" tests/e2e "$@"
  else
    echo "== PostgreSQL suite skipped: set RS_TEST_POSTGRES_URL=postgresql+psycopg://user@host:5432/db to run it"
  fi
fi
