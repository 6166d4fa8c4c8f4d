"""Rollout import benchmark: the real import path against `psql \\copy` of the same rows.

    .venv/bin/python bench/import_rollouts.py                # 100,000 rollouts, 3 runs each
    .venv/bin/python bench/import_rollouts.py --rows 20000 --runs 1
    .venv/bin/python bench/import_rollouts.py --large        # also a ~1 GB file, peak memory
    .venv/bin/python bench/import_rollouts.py --write-docs   # record the figures in docs/

It generates Studio JSONL rollouts of about 4 KB each (text drawn from the bundled CUAD
contracts), creates a fresh PostgreSQL database, and for each run imports the file through the
service the CLI, API and browser use (create_import + the worker's process_import: every line is
checked first, then stored with COPY) in a child process, whose peak memory (ru_maxrss) is
reported. The baseline is `psql \\copy` of exactly the rows the import stores into an
equivalent table (same columns and indexes, including the full-text index) in the same run.
Medians are reported. A last pair of runs without the full-text index shows what that index
costs both paths. Needs `psql` and a PostgreSQL server (RS_BENCH_POSTGRES_URL).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import databases  # noqa: E402

DEFAULT_SERVER = os.environ.get(
    "RS_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
DOCS = ROOT / "docs" / "benchmarks.md"
START_MARK = "<!-- import-benchmark:start -->"
END_MARK = "<!-- import-benchmark:end -->"
CONTRACTS = ROOT / "app" / "demo" / "data" / "cuad_sample_12.jsonl"
SYSTEM_PROMPT = (
    "You are a contract review assistant for an in-house legal team. Review the contract "
    "against the playbook and return a JSON list of comments, each with text_excerpt, rule, "
    "comment_type, concern and recommended_action. Quote the contract exactly."
)


# ---------------------------------------------------------------------------- data


class Words:
    """Contract vocabulary with a Zipf-like frequency, so text indexes see realistic words."""

    def __init__(self, seed: int) -> None:
        text = CONTRACTS.read_text(encoding="utf-8")
        vocabulary = sorted(set(re.findall(r"[A-Za-z][a-z]{2,14}", text)))
        self.rng = random.Random(seed)
        self.rng.shuffle(vocabulary)
        self.vocabulary = vocabulary
        self.cumulative = list(itertools.accumulate(1 / (i + 1) for i in range(len(vocabulary))))

    def text(self, chars: int) -> str:
        words = self.rng.choices(self.vocabulary, cum_weights=self.cumulative, k=chars // 7 + 1)
        return " ".join(words)[:chars]


def rows(count: int, row_kb: float, seed: int = 7) -> Iterator[dict[str, Any]]:
    words = Words(seed)
    body = int(row_kb * 1024)
    for n in range(count):
        comments = [
            {
                "text_excerpt": words.text(120),
                "rule": f"R{n % 9 + 1}",
                "comment_type": ("deviation", "risk", "clarification")[n % 3],
                "concern": words.text(int(body * 0.22)),
                "recommended_action": words.text(int(body * 0.08)),
            }
            for _ in range(2)
        ]
        step = (n // 8 % 50) * 10
        yield {
            "id": f"bench-{n:07d}",
            "input": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": "Review this contract: " + words.text(int(body * 0.2))},
            ],
            "response": json.dumps(comments),
            "model": "nova-lite-rft",
            "checkpoint": f"nova-lite-rft/step-{step}",
            "step": step,
            "group": f"prompt-{n // 8:06d}",
            "metadata": {"generation": n % 8, "batch": n // 1000},
        }


def write_jsonl(path: Path, count: int, row_kb: float) -> int:
    with path.open("w", encoding="utf-8") as out:
        for row in rows(count, row_kb):
            out.write(json.dumps(row) + "\n")
    return path.stat().st_size


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        value = value.isoformat()
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def write_copy_file(jsonl: Path, target: Path, project_id: int, filename: str) -> None:
    """The rows exactly as the import stores them, in COPY's text format."""
    from app.rollouts.bulk import BatchTarget, _copy_values
    from app.rollouts.parsing import ParsedLine, iter_parse

    batch = BatchTarget(project_id, None, filename)
    now = datetime.now(UTC)
    with jsonl.open("rb") as stream, target.open("w", encoding="utf-8") as out:
        for item in iter_parse(stream, None, filename):
            assert isinstance(item, ParsedLine), item
            for record in item.records:
                values = _copy_values(record, batch, now)
                out.write("\t".join(_copy_text(v) for v in values) + "\n")


# ---------------------------------------------------------------------------- database


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@dataclass
class Database:
    url: str
    name: str
    server: str

    def sql(self, statement: str) -> None:
        subprocess.run(
            ["psql", libpq_url(self.url), "-q", "-v", "ON_ERROR_STOP=1", "-c", statement],
            check=True,
            capture_output=True,
        )


def create_database(server: str) -> Database:
    from sqlalchemy.engine import make_url

    url = databases.create_database(server, "rs_bench")
    return Database(url, make_url(url).database or "", server)


def drop_database(db: Database) -> None:
    databases.drop_database(db.server, db.url)


def make_project(db: Database) -> int:
    from sqlmodel import Session

    from app.auth import service as auth_service
    from app.core.db import get_engine
    from app.projects import service as project_service

    with Session(get_engine(db.url)) as session:
        user = auth_service.create_user(
            session, email="bench@example.com", password="benchmark password", display_name="b"
        )
        project = project_service.create_project(session, name="Import benchmark", owner=user)
        return project.id or 0


def reset(db: Database) -> None:
    db.sql(
        "TRUNCATE rollout, rollout_import, rollout_import_problem, rollout_pair, "
        "rollout_baseline RESTART IDENTITY CASCADE"
    )
    db.sql("CHECKPOINT")


# ---------------------------------------------------------------------------- runs


def child_import(url: str, project_id: int, path: str, data_dir: str) -> None:
    """Runs in a child process: one import through the service, then its time and peak RSS."""
    from sqlmodel import Session

    from app.core.config import Settings
    from app.core.db import get_engine
    from app.projects.models import Project
    from app.rollouts import jobs
    from app.rollouts import service as rollout_service

    settings = Settings(
        env="test",
        database_url=url,
        data_dir=Path(data_dir),
        max_upload_bytes=64 * 1024**3,
        lease_seconds=600,
    )
    engine = get_engine(url)
    started = time.perf_counter()
    with Session(engine, expire_on_commit=False) as session:
        project = session.get(Project, project_id)
        assert project is not None
        job = rollout_service.create_import(
            session,
            settings,
            project,
            None,
            filename=Path(path).name,
            path=Path(path),
            claim_by="bench",
        )
    finished = jobs.process_import(engine, settings, job.id or 0, "bench")
    seconds = time.perf_counter() - started
    assert finished is not None
    result = {
        "seconds": seconds,
        "status": finished.status,
        "inserted": finished.inserted,
        "message": finished.message,
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    print(json.dumps(result))


def run_service(db: Database, project_id: int, path: Path, data_dir: Path) -> dict[str, Any]:
    args = [sys.executable, __file__, "--child", db.url, str(project_id), str(path), str(data_dir)]
    done = subprocess.run(args, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["status"] != "done":
        raise SystemExit(f"the import did not finish: {result}")
    return result


def run_copy(db: Database, copy_file: Path) -> float:
    from app.rollouts.bulk import ROLLOUT_COLUMNS

    command = f"\\copy rollout_baseline ({', '.join(ROLLOUT_COLUMNS)}) FROM '{copy_file}'"
    started = time.perf_counter()
    subprocess.run(
        ["psql", libpq_url(db.url), "-q", "-v", "ON_ERROR_STOP=1", "-c", command],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def count(db: Database, table: str) -> int:
    out = subprocess.run(
        ["psql", libpq_url(db.url), "-At", "-c", f"SELECT count(*) FROM {table}"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip())


# ---------------------------------------------------------------------------- report


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    load = ""
    with contextlib.suppress(OSError):
        load = f", load average {os.getloadavg()[0]:.1f} at the start"
    return f"{cpu}, {os.cpu_count()} cores{memory}{load}"


def server_version(db: Database) -> str:
    out = subprocess.run(
        ["psql", libpq_url(db.url), "-At", "-c", "SHOW server_version"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def mib(size: int) -> str:
    return f"{size / 1024 / 1024:,.0f} MiB"


def report(figures: dict[str, Any]) -> str:
    f = figures
    lines = [
        f"Measured {f['date']} on {f['machine']}; PostgreSQL {f['postgres']}, Python "
        f"{f['python']}. Command: `{f['command']}`.",
        "",
        f"Data: {f['rows']:,} Studio JSONL rollouts of about {f['row_kb']:g} KB "
        f"({mib(f['file_bytes'])}); median of {f['runs']} runs.",
        "",
        "| path | median | rollouts/s | runs (s) |",
        "|---|---|---|---|",
        f"| import (service: check every line, then COPY) | {f['service_median']:.1f} s | "
        f"{f['service_rate']:,.0f} | {', '.join(f'{s:.1f}' for s in f['service_runs'])} |",
        f"| baseline: `psql \\copy` of the same rows into an equivalent table | "
        f"{f['copy_median']:.1f} s | {f['copy_rate']:,.0f} | "
        f"{', '.join(f'{s:.1f}' for s in f['copy_runs'])} |",
        "",
        f"**The import runs at {f['ratio']:.0%} of `\\copy`'s rate** (target: at least 33%).",
        f"Peak memory of the importing process (ru_maxrss) for the {mib(f['file_bytes'])} file: "
        f"**{f['service_maxrss_mb']:.0f} MB**.",
    ]
    if f.get("nofts"):
        n = f["nofts"]
        lines += [
            "",
            "Without the full-text index (dropped for one more run of each path), to show what "
            "it costs: import "
            f"{n['service_rate']:,.0f} rollouts/s, `\\copy` {n['copy_rate']:,.0f} rollouts/s "
            f"({n['ratio']:.0%}). Computing `to_tsvector('english', …)` for every row "
            "dominates both paths when the index is present.",
        ]
    if f.get("large"):
        g = f["large"]
        lines += [
            "",
            f"Large file: {g['rows']:,} rollouts ({mib(g['file_bytes'])}) imported in "
            f"{g['seconds']:.0f} s ({g['rate']:,.0f} rollouts/s"
            f"{'' if g['with_fts'] else ', full-text index dropped'}); peak memory "
            f"**{g['maxrss_mb']:.0f} MB** (target: under 300 MB).",
        ]
    else:
        lines += [
            "",
            "The 1 GB case runs with `--large` (peak memory target: under 300 MB).",
        ]
    lines += [
        "",
        "The equivalent table is `CREATE TABLE rollout_baseline (LIKE rollout INCLUDING ALL)`: "
        "the same columns, defaults and indexes (the unique (project, id) index and the GIN "
        "full-text index included) but no foreign keys. The import also parses and validates "
        "every line twice (the whole file is checked before anything is stored), computes "
        "content hashes, looks up existing ids per batch of 1,000 lines, and commits its "
        "progress with every batch.",
    ]
    return "\n".join(lines)


def write_docs(text: str) -> None:
    section = f"{START_MARK}\n{text}\n{END_MARK}"
    if DOCS.exists():
        current = DOCS.read_text(encoding="utf-8")
        if START_MARK in current and END_MARK in current:
            before = current.split(START_MARK)[0]
            after = current.split(END_MARK, 1)[1]
            DOCS.write_text(before + section + after, encoding="utf-8")
            return
        DOCS.write_text(
            current.rstrip() + "\n\n## Rollout import\n\n" + section + "\n", encoding="utf-8"
        )
        return
    DOCS.write_text("# Benchmarks\n\n## Rollout import\n\n" + section + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rollouts in the file")
    parser.add_argument("--row-kb", type=float, default=4.0, help="approximate size of one")
    parser.add_argument("--runs", type=int, default=3, help="runs of each path (median)")
    parser.add_argument("--server", default=DEFAULT_SERVER, help="PostgreSQL server URL")
    parser.add_argument("--large", action="store_true", help="also import a ~1 GB file")
    parser.add_argument("--large-gb", type=float, default=1.0, help="size of the large file")
    parser.add_argument("--no-nofts", action="store_true", help="skip the run without FTS index")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, project_id, path, data_dir = args.child
        child_import(url, int(project_id), path, data_dir)
        return
    if not shutil.which("psql"):
        raise SystemExit("the baseline needs `psql` on the PATH")

    workdir = Path(tempfile.mkdtemp(prefix="rs-import-bench-"))
    db = create_database(args.server)
    load = machine()
    try:
        jsonl = workdir / "rollouts.jsonl"
        print(f"generating {args.rows:,} rollouts of ~{args.row_kb:g} KB …", flush=True)
        size = write_jsonl(jsonl, args.rows, args.row_kb)
        project_id = make_project(db)
        copy_file = workdir / "rollouts.copy"
        write_copy_file(jsonl, copy_file, project_id, jsonl.name)
        db.sql("CREATE TABLE rollout_baseline (LIKE rollout INCLUDING ALL)")

        service_runs: list[float] = []
        copy_runs: list[float] = []
        maxrss: list[int] = []
        for run in range(args.runs):
            reset(db)
            result = run_service(db, project_id, jsonl, workdir / "data")
            assert count(db, "rollout") == args.rows
            service_runs.append(result["seconds"])
            maxrss.append(result["maxrss_kb"])
            reset(db)
            copy_runs.append(run_copy(db, copy_file))
            assert count(db, "rollout_baseline") == args.rows
            print(
                f"run {run + 1}: import {service_runs[-1]:.1f} s "
                f"({args.rows / service_runs[-1]:,.0f}/s, peak {result['maxrss_kb'] / 1024:.0f} "
                f"MB); \\copy {copy_runs[-1]:.1f} s ({args.rows / copy_runs[-1]:,.0f}/s)",
                flush=True,
            )
        service_median = statistics.median(service_runs)
        copy_median = statistics.median(copy_runs)
        figures: dict[str, Any] = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "machine": load,
            "postgres": server_version(db),
            "python": platform.python_version(),
            "command": "python bench/import_rollouts.py"
            + (f" --rows {args.rows}" if args.rows != 100_000 else "")
            + (f" --runs {args.runs}" if args.runs != 3 else "")
            + (" --large" if args.large else ""),
            "rows": args.rows,
            "row_kb": args.row_kb,
            "file_bytes": size,
            "runs": args.runs,
            "service_runs": service_runs,
            "copy_runs": copy_runs,
            "service_median": service_median,
            "copy_median": copy_median,
            "service_rate": args.rows / service_median,
            "copy_rate": args.rows / copy_median,
            "ratio": copy_median / service_median,
            "service_maxrss_mb": max(maxrss) / 1024,
        }

        if not args.no_nofts:
            db.sql("DROP INDEX IF EXISTS ix_rollout_search_vector")
            db.sql("DROP INDEX IF EXISTS rollout_baseline_to_tsvector_idx")
            for index in _gin_indexes(db, "rollout_baseline"):
                db.sql(f'DROP INDEX "{index}"')
            reset(db)
            service = run_service(db, project_id, jsonl, workdir / "data")["seconds"]
            reset(db)
            copy = run_copy(db, copy_file)
            figures["nofts"] = {
                "service_rate": args.rows / service,
                "copy_rate": args.rows / copy,
                "ratio": copy / service,
            }
            print(f"without the full-text index: import {service:.1f} s, \\copy {copy:.1f} s")

        if args.large:
            large_rows = int(args.large_gb * 1024**3 / (size / args.rows))
            large = workdir / "large.jsonl"
            print(f"generating {large_rows:,} rollouts (~{args.large_gb:g} GB) …", flush=True)
            large_size = write_jsonl(large, large_rows, args.row_kb)
            reset(db)
            result = run_service(db, project_id, large, workdir / "data")
            figures["large"] = {
                "rows": large_rows,
                "file_bytes": large_size,
                "seconds": result["seconds"],
                "rate": large_rows / result["seconds"],
                "maxrss_mb": result["maxrss_kb"] / 1024,
                "with_fts": args.no_nofts,
            }
            print(
                f"large file: {result['seconds']:.0f} s, peak {result['maxrss_kb'] / 1024:.0f} MB"
            )

        text = report(figures)
        print()
        print(text)
        (workdir / "figures.json").write_text(json.dumps(figures, indent=2))
        if args.write_docs:
            write_docs(text)
            print(f"\nwritten to {DOCS.relative_to(ROOT)}")
    finally:
        drop_database(db)
        shutil.rmtree(workdir, ignore_errors=True)


def _gin_indexes(db: Database, table: str) -> list[str]:
    out = subprocess.run(
        [
            "psql",
            libpq_url(db.url),
            "-At",
            "-c",
            f"SELECT indexname FROM pg_indexes WHERE tablename = '{table}' "
            "AND indexdef ILIKE '%USING gin%'",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return [line for line in out.stdout.splitlines() if line.strip()]


if __name__ == "__main__":
    main()
