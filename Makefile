# Task runner: `make dev`, `make test`, `make lint`, `make migrate`, `make seed`, `make bench`.
PY ?= .venv/bin/python

.PHONY: install dev demo test test-sqlite test-pg lint migrate migration seed bench

install:
	python3 -m venv .venv && $(PY) -m pip install -q -e '.[dev]'

dev:
	.venv/bin/rubric-studio serve --reload

demo:
	.venv/bin/rubric-studio demo

test:
	./scripts/test.sh

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy app

migrate:
	.venv/bin/rubric-studio db upgrade

# Before the first release the schema lives in one migration: regenerate it from the models.
migration-reset:
	rm -f migrations/versions/*_0001_initial_schema.py /tmp/rs-migration.db
	RS_DATABASE_URL=sqlite:////tmp/rs-migration.db .venv/bin/alembic revision --autogenerate -m "initial schema" --rev-id 0001
	.venv/bin/ruff format migrations && .venv/bin/ruff check --fix migrations

seed:
	.venv/bin/rubric-studio demo --no-serve

bench:
	$(PY) bench/import_rollouts.py && $(PY) bench/judge_throughput.py
