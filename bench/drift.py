"""Drift benchmark: import rate of drift samples against `psql \\copy`, and dashboard / series
latency, on PostgreSQL.

    .venv/bin/python bench/drift.py                      # 1,000,000 samples
    .venv/bin/python bench/drift.py --samples 100000     # a quicker run
    .venv/bin/python bench/drift.py --write-docs         # record the figures in docs/

It writes synthetic §8 records (app/drift/synthetic.py: ~1.1 KB a line, a 320-character
contract as target document, groups of 8, steps 0-600), creates a fresh PostgreSQL database,
and imports the file through the service the CLI, API and browser use (create_drift_import +
the worker's process_import: every line is checked first, then each record becomes a rollout —
full-text index included — and a drift_sample, both by COPY). The baseline is `psql \\copy` of
exactly the rows the import stored (rollout and drift_sample, dumped with COPY TO) into
equivalent tables with the same indexes. Then it times the training-run page and the series API
in-process (TestClient) over several runs: the first request after an import computes the series
in SQL and caches it per data version; later requests read the cache. The uncached computation
is timed separately by invalidating the cache before each run. Needs `psql` and a PostgreSQL
server (RS_BENCH_POSTGRES_URL).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_SERVER = os.environ.get(
    "RS_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
DOCS = ROOT / "docs" / "benchmarks.md"
START_MARK = "<!-- drift-benchmark:start -->"
END_MARK = "<!-- drift-benchmark:end -->"


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def psql(url: str, statement: str) -> None:
    subprocess.run(
        ["psql", libpq(url), "-q", "-v", "ON_ERROR_STOP=1", "-c", statement],
        check=True,
        capture_output=True,
    )


def write_file(path: Path, samples: int) -> int:
    from app.drift.synthetic import records

    with path.open("w", encoding="utf-8") as out:
        for record in records(samples, run="bench", steps=600, gaming_from=350, seed=1):
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
    return path.stat().st_size


def create_database(server: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from app.core import migrations

    name = f"rs_drift_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    migrations.upgrade(url)
    return url


def drop_database(server: str, url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from app.core.db import get_engine

    get_engine.cache_clear()
    name = make_url(url).database
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def settings_for(url: str, data_dir: Path) -> Any:
    from app.core.config import Settings

    return Settings(
        database_url=url,
        data_dir=data_dir,
        env="test",
        secret_key="x" * 40,
        max_upload_bytes=8 * 1024**3,
    )


def run_import(url: str, path: Path, data_dir: Path) -> dict[str, Any]:
    from sqlmodel import Session

    from app.auth import service as auth_service
    from app.core.db import get_engine
    from app.drift import service as drift_service
    from app.drift.jobs import DriftImportRunner
    from app.projects import service as project_service
    from app.rollouts.jobs import process_import

    settings = settings_for(url, data_dir)
    engine = get_engine(url)
    with Session(engine, expire_on_commit=False) as session:
        user = auth_service.create_user(
            session, email="bench@example.com", password="benchmark password", display_name="b"
        )
        project = project_service.create_project(session, name="Drift benchmark", owner=user)
        run = drift_service.create_training_run(session, project, user, name="bench")
        started = time.perf_counter()
        job = drift_service.create_drift_import(
            session,
            settings,
            project,
            run,
            user,
            filename=path.name,
            path=path,
            claim_by="bench",
        )
    finished = process_import(
        engine, settings, job.id or 0, "bench", runner_class=DriftImportRunner
    )
    seconds = time.perf_counter() - started
    assert finished is not None and finished.status == "done", finished and finished.message
    return {
        "project_id": project.id,
        "run_id": run.id,
        "user": user.email,
        "seconds": seconds,
        "inserted": finished.inserted,
    }


def baseline_copy(url: str, tmp: Path) -> float:
    """`psql \\copy` of the rows the import stored into equivalent tables (same indexes)."""
    rollout_csv, sample_csv = tmp / "rollout.copy", tmp / "drift_sample.copy"
    psql(url, f"\\copy rollout TO '{rollout_csv}'")
    psql(url, f"\\copy drift_sample TO '{sample_csv}'")
    psql(url, "CREATE TABLE rollout_baseline (LIKE rollout INCLUDING ALL)")
    psql(url, "CREATE TABLE drift_sample_baseline (LIKE drift_sample INCLUDING ALL)")
    started = time.perf_counter()
    psql(url, f"\\copy rollout_baseline FROM '{rollout_csv}'")
    psql(url, f"\\copy drift_sample_baseline FROM '{sample_csv}'")
    return time.perf_counter() - started


def latencies(url: str, data_dir: Path, info: dict[str, Any], runs: int) -> dict[str, list[float]]:
    from fastapi.testclient import TestClient
    from sqlalchemy import update
    from sqlmodel import Session

    from app.core.db import get_engine
    from app.drift import service as drift_service
    from app.drift.models import TrainingRun
    from app.main import create_app

    settings = settings_for(url, data_dir)
    app = create_app(settings)
    engine = get_engine(url)
    client = TestClient(app)
    page = client.get("/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    login = client.post(
        "/login",
        data={"email": info["user"], "password": "benchmark password", "csrf_token": token},
        follow_redirects=False,
    )
    assert login.status_code in (302, 303), login.text[:300]
    base = f"/projects/{info['project_id']}/training-runs/{info['run_id']}"
    api = f"/api/v1{base}/series"
    out: dict[str, list[float]] = {"first_page": [], "page": [], "series_api": [], "uncached": []}
    started = time.perf_counter()
    assert client.get(base).status_code == 200
    out["first_page"].append(time.perf_counter() - started)
    for _ in range(runs):
        started = time.perf_counter()
        assert client.get(base).status_code == 200
        out["page"].append(time.perf_counter() - started)
        started = time.perf_counter()
        assert client.get(api).status_code == 200
        out["series_api"].append(time.perf_counter() - started)
    for _ in range(3):
        with Session(engine) as session:
            session.execute(
                update(TrainingRun)
                .where(TrainingRun.id == info["run_id"])
                .values(data_version=TrainingRun.data_version + 1)
            )
            session.commit()
            run = session.get(TrainingRun, info["run_id"])
            assert run is not None
            started = time.perf_counter()
            drift_service.series(session, run)
            out["uncached"].append(time.perf_counter() - started)
    return out


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20, help="latency runs")
    parser.add_argument("--server", default=DEFAULT_SERVER)
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmpdir:
        tmp = Path(tmpdir)
        os.chmod(tmp, 0o755)
        path = tmp / "samples.jsonl"
        started = time.perf_counter()
        size = write_file(path, args.samples)
        print(
            f"wrote {args.samples:,} samples ({size / 2**20:,.0f} MiB) in "
            f"{time.perf_counter() - started:.0f} s",
            flush=True,
        )
        url = create_database(args.server)
        try:
            info = run_import(url, path, tmp / "data")
            rate = info["inserted"] / info["seconds"]
            print(f"import: {info['seconds']:.1f} s, {rate:,.0f} samples/s", flush=True)
            psql(url, "ANALYZE")
            lat = latencies(url, tmp / "data", info, args.runs)
            copy_seconds = baseline_copy(url, tmp)
            copy_rate = info["inserted"] / copy_seconds
            print(f"baseline psql \\copy: {copy_seconds:.1f} s, {copy_rate:,.0f} samples/s")
            for key, values in lat.items():
                print(
                    f"{key}: p50 {statistics.median(values) * 1000:.0f} ms, "
                    f"p95 {p95(values) * 1000:.0f} ms over {len(values)}"
                )
        finally:
            if not args.keep:
                drop_database(args.server, url)
    if args.write_docs:
        write_docs(args, size, info, rate, copy_seconds, copy_rate, lat, load)


def write_docs(
    args: Any,
    size: int,
    info: dict,
    rate: float,
    copy_seconds: float,
    copy_rate: float,
    lat: dict[str, list[float]],
    load: float,
) -> None:
    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:,.0f} ms / {p95(values) * 1000:,.0f} ms"

    server = subprocess.run(
        ["psql", libpq(args.server), "-Atc", "SHOW server_version"], capture_output=True, text=True
    ).stdout.strip()
    platform_line = (
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, load average {load:.1f} at the start; PostgreSQL {server}, "
        f"Python {platform.python_version()}. Command: `python bench/drift.py --samples "
        f"{args.samples}`."
    )
    lines = [
        START_MARK,
        platform_line,
        "",
        f"Data: {args.samples:,} synthetic drift records ({size / 2**20:,.0f} MiB of JSONL), "
        "steps 0–600, groups of 8.",
        "",
        "| what | time | rate |",
        "|---|---|---|",
        "| import (check every line, then each record → rollout + drift_sample by COPY) | "
        f"{info['seconds']:,.1f} s | **{rate:,.0f} samples/s** |",
        "| baseline: `psql \\copy` of the stored rollout and drift_sample rows into equivalent "
        f"tables | {copy_seconds:,.1f} s | {copy_rate:,.0f} samples/s |",
        "",
        f"| request ({args.runs} runs) | p50 / p95 |",
        "|---|---|",
        "| training-run page, first request after the import (computes and caches the series) "
        f"| {ms(lat['first_page'])} |",
        f"| training-run page (series cached per data version) | {ms(lat['page'])} |",
        f"| series API `GET …/series` | {ms(lat['series_api'])} |",
        f"| series computed in SQL without the cache (3 runs) | {ms(lat['uncached'])} |",
        END_MARK,
    ]
    body = "\n".join(lines)
    text = DOCS.read_text(encoding="utf-8")
    if START_MARK in text:
        head, rest = text.split(START_MARK, 1)
        text = head + body + rest.split(END_MARK, 1)[1]
    else:
        text = text.rstrip() + "\n\n## Drift samples\n\n" + body + "\n"
    DOCS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
