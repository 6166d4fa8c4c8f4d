"""Drift benchmark: import rate of drift samples against `psql \\copy`, and dashboard / series
latency, on PostgreSQL.

    .venv/bin/python bench/drift.py                                  # 100k x3, then 1M once
    .venv/bin/python bench/drift.py --samples 100000 --repeat 1      # a quicker run
    .venv/bin/python bench/drift.py --write-docs                     # record the figures in docs/

It writes synthetic §8 records (app/drift/synthetic.py: ~1.6 KB a line, a 320-character
contract as target document, groups of 8, steps 0-600), creates a fresh PostgreSQL database per
import, and imports the file through the service the CLI, API and browser use
(create_drift_import + the worker's process_import: one pass, each line checked, then each
record becomes a rollout and a drift_sample, both by COPY). The median of the imports of each
size is reported, with the CPU each used (the importing process, and the PostgreSQL backends
of the database: the machine is shared, so wall-clock rates depend on its load; the importing
process's CPU includes its parsing processes'). The baseline
is `psql \\copy` of exactly the rows the import stored (rollout and drift_sample, dumped with
COPY TO) into tables with the same indexes (not the foreign keys), right after each import.
Then it times the training-run page and the series API in-process (TestClient): the first
request after an import reads the series the import computed; the uncached computation is
timed separately by invalidating the cache before each run. Needs `psql` and a PostgreSQL
server on this machine (RS_BENCH_POSTGRES_URL).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.databases import create_database, drop_database  # noqa: E402

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


def settings_for(url: str, data_dir: Path) -> Any:
    from app.core.config import Settings

    return Settings(
        database_url=url,
        data_dir=data_dir,
        env="test",
        secret_key="x" * 40,
        max_upload_bytes=8 * 1024**3,
    )


def backend_cpu(url: str) -> float:
    """CPU seconds used so far by the PostgreSQL backends connected to this database (read
    from /proc: the server must run on this machine; 0 where it cannot be read)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    engine = create_engine(url)
    with engine.connect() as conn:
        own = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        pids = conn.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = :name AND pid <> :own"),
            {"name": name, "own": own},
        ).scalars()
        total = 0.0
        ticks = os.sysconf("SC_CLK_TCK")
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / ticks
    engine.dispose()
    return total


def children_cpu() -> float:
    """CPU seconds of this process's ended children (the import's parsing processes)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


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
        process_started, children_started = time.process_time(), children_cpu()
        db_cpu_started = backend_cpu(url)
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
    deadline = time.monotonic() + 30
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)  # the parsing processes are ending: count their CPU too
    process_cpu = time.process_time() - process_started
    pool_cpu = children_cpu() - children_started
    cpu = process_cpu + pool_cpu
    db_cpu = backend_cpu(url) - db_cpu_started
    assert finished is not None and finished.status == "done", finished and finished.message
    return {
        "cpu": cpu,
        "process_cpu": process_cpu,
        "pool_cpu": pool_cpu,
        "db_cpu": db_cpu,
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


def measure_size(args: Any, samples: int, repeats: int, tmp: Path) -> dict[str, Any]:
    """Import `samples` records `repeats` times (a fresh database each time, the `\\copy`
    baseline right after each import), then time the pages over the last database."""
    path = tmp / f"samples-{samples}.jsonl"
    started = time.perf_counter()
    size = write_file(path, samples)
    print(
        f"wrote {samples:,} samples ({size / 2**20:,.0f} MiB) in "
        f"{time.perf_counter() - started:.0f} s",
        flush=True,
    )
    imports: list[dict[str, Any]] = []
    copies: list[float] = []
    loads: list[float] = []
    lat: dict[str, list[float]] = {}
    for attempt in range(repeats):
        loads.append(os.getloadavg()[0])
        url = create_database(args.server, "rs_drift_bench")
        try:
            info = run_import(url, path, tmp / "data")
            imports.append(info)
            print(
                f"[{samples:,} #{attempt + 1}] import: {info['seconds']:.1f} s, "
                f"{info['inserted'] / info['seconds']:,.0f} samples/s; CPU per sample: "
                f"{info['cpu'] / info['inserted'] * 1e6:,.0f} µs in the import's processes "
                f"({info['process_cpu'] / info['inserted'] * 1e6:,.0f} µs in the importing one), "
                f"{info['db_cpu'] / info['inserted'] * 1e6:,.0f} µs in PostgreSQL "
                f"(load {loads[-1]:.1f})",
                flush=True,
            )
            psql(url, "ANALYZE")
            if attempt == repeats - 1:
                lat = latencies(url, tmp / "data", info, args.runs)
            copy_seconds = baseline_copy(url, tmp)
            copies.append(copy_seconds)
            print(
                f"[{samples:,} #{attempt + 1}] baseline psql \\copy: {copy_seconds:.1f} s, "
                f"{info['inserted'] / copy_seconds:,.0f} samples/s",
                flush=True,
            )
        finally:
            if not args.keep:
                drop_database(args.server, url)
    path.unlink()
    for key, values in lat.items():
        print(
            f"[{samples:,}] {key}: p50 {statistics.median(values) * 1000:.0f} ms, "
            f"p95 {p95(values) * 1000:.0f} ms over {len(values)}"
        )
    inserted = imports[0]["inserted"]
    rates = [info["inserted"] / info["seconds"] for info in imports]
    return {
        "samples": samples,
        "size": size,
        "repeats": repeats,
        "inserted": inserted,
        "rate": statistics.median(rates),
        "rates": rates,
        "seconds": statistics.median(info["seconds"] for info in imports),
        "cpu_us": statistics.median(info["cpu"] / info["inserted"] * 1e6 for info in imports),
        "db_cpu_us": statistics.median(info["db_cpu"] / info["inserted"] * 1e6 for info in imports),
        "process_cpu_us": statistics.median(
            info["process_cpu"] / info["inserted"] * 1e6 for info in imports
        ),
        "pool_cpu_us": statistics.median(
            info["pool_cpu"] / info["inserted"] * 1e6 for info in imports
        ),
        "total_cpu_us": statistics.median(
            (info["cpu"] + info["db_cpu"]) / info["inserted"] * 1e6 for info in imports
        ),
        "copy_seconds": statistics.median(copies),
        "copy_rate": statistics.median(inserted / c for c in copies),
        "loads": loads,
        "lat": lat,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--samples", type=int, nargs="+", default=[100_000, 1_000_000], help="sizes to measure"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="imports per size (the median is reported); sizes of 1,000,000 and more run once",
    )
    parser.add_argument("--runs", type=int, default=20, help="latency runs")
    parser.add_argument("--server", default=DEFAULT_SERVER)
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmpdir:
        tmp = Path(tmpdir)
        os.chmod(tmp, 0o755)
        for samples in args.samples:
            repeats = 1 if samples >= 1_000_000 else max(1, args.repeat)
            results.append(measure_size(args, samples, repeats, tmp))
    for result in results:
        print(
            f"{result['samples']:,}: import {result['rate']:,.0f} samples/s (median of "
            f"{result['repeats']}), psql \\copy {result['copy_rate']:,.0f} samples/s"
        )
    if args.write_docs:
        write_docs(args, results)


def write_docs(args: Any, results: list[dict[str, Any]]) -> None:
    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:,.0f} ms / {p95(values) * 1000:,.0f} ms"

    server = subprocess.run(
        ["psql", libpq(args.server), "-Atc", "SHOW server_version"], capture_output=True, text=True
    ).stdout.strip()
    sizes = " ".join(str(r["samples"]) for r in results)
    loads = ", ".join(f"{load:.1f}" for r in results for load in r["loads"])
    lines = [
        START_MARK,
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores shared with "
        f"other work (1-minute load average at the start of each import: {loads}); "
        f"PostgreSQL {server}, Python {platform.python_version()}. Command: "
        f"`python bench/drift.py --samples {sizes} --repeat {args.repeat} --write-docs`.",
        "",
        "Data: synthetic drift records (`app/drift/synthetic.py`, ~1.6 KB of JSONL each), steps "
        "0–600, groups of 8. Each import goes into a fresh database through the worker's "
        "import job; the baseline is `psql \\copy` of exactly the rows it stored (rollout and "
        "drift_sample) into tables with the same indexes, right after it.",
        "",
        "| samples | import (median) | each import | `\\copy` baseline | import ÷ `\\copy` "
        "| CPU per sample: importing process + parsing processes / PostgreSQL "
        "| all CPU per sample | 2 free cores, all busy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        each = ", ".join(f"{rate:,.0f}" for rate in r["rates"])
        lines.append(
            f"| {r['samples']:,} ({r['size'] / 2**20:,.0f} MiB) | **{r['rate']:,.0f} samples/s** "
            f"({r['seconds']:,.1f} s) | {each} | {r['copy_rate']:,.0f} samples/s "
            f"({r['copy_seconds']:,.1f} s) | {r['rate'] / r['copy_rate']:.0%} "
            f"| {r['process_cpu_us']:,.0f} µs + {r['pool_cpu_us']:,.0f} µs / "
            f"{r['db_cpu_us']:,.0f} µs | {r['total_cpu_us']:,.0f} µs "
            f"| {2e6 / r['total_cpu_us']:,.0f} samples/s |"
        )
    lines += [
        "",
        f"| request, p50 / p95 over {args.runs} runs | "
        + " | ".join(f"{r['samples']:,} samples" for r in results)
        + " |",
        "|---|" + "---|" * len(results),
    ]
    for key, label in (
        ("first_page", "training-run page, first request after the import (1 run)"),
        ("page", "training-run page (series cached per data version)"),
        ("series_api", "series API `GET …/series`"),
        ("uncached", "series computed in SQL without the cache (3 runs)"),
    ):
        lines.append(f"| {label} | " + " | ".join(ms(r["lat"][key]) for r in results) + " |")
    lines.append(END_MARK)
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
