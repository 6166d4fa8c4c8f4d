#!/bin/sh
# Container entry point: wait for the database, migrate, then run the web app or a worker.
set -eu
if [ -n "${RS_DATABASE_URL:-}" ] && [ -n "${PGHOST:-}" ]; then
  echo "waiting for PostgreSQL at ${PGHOST}:${PGPORT:-5432}..."
  until pg_isready -h "$PGHOST" -p "${PGPORT:-5432}" -q; do sleep 1; done
fi
case "${1:-web}" in
  web)
    rubric-studio db upgrade
    exec rubric-studio serve --host 0.0.0.0 --port 8000 --no-migrate ;;
  worker)
    exec rubric-studio worker ;;
  *)
    exec "$@" ;;
esac
