"""Page latency at the scale of a real training run, on PostgreSQL, served as in production.

    .venv/bin/python bench/pages.py                  # the issue's world: 1,000,048 rollouts
    .venv/bin/python bench/pages.py --scale 0.02     # a 20,000-rollout world, a quick check
    .venv/bin/python bench/pages.py --reuse          # measure again on the world already built
    .venv/bin/python bench/pages.py --write-docs     # record the figures in docs/benchmarks.md

What it does, in one command:

1. **Builds the world** in a dedicated database (`rs_pages_bench_<scale>`), migrated by
   Alembic to the app's own schema. The app's services create the users, the project, the rubric
   version (the built-in generic pass/fail rubric), the judge configuration and a training run;
   the bulk rows are written with **COPY into the app's own tables** (not through the import
   path, whose rate bench/import_rollouts.py measures): 1,000,048 rollouts of ~2.4 KB (response
   and prompt drawn from a Zipf vocabulary, so common and rare words exist; 25 mention
   "zanzibar"), 1,050,144 verdicts in five completed runs (1,000,048 / 20,000 / 20,000 / 5,000 /
   5,096 verdicts; answers scored by the app's own `score_answer`), 20,020 submitted expert
   labels on rollouts the runs judged, and one drift sample per rollout in one training run.
   Secondary indexes are dropped before COPY and created again from their own definitions
   afterwards (the usual bulk-load order), then `VACUUM ANALYZE`. `--scale` multiplies every
   count.
2. **Serves the app** as docs/deployment.md does (`rubric-studio serve --no-migrate`, one
   uvicorn process, `RS_ENV=production`), with no worker. The web process runs under an
   address-space limit (`--memory-limit-gb`, default 6) so that a page that would load a whole
   run cannot take the shared machine's memory: it fails with MemoryError instead (counted as a
   5xx).
3. **Measures** every page and API of the issue, plus the drift dashboard, the leaderboard and
   sliced agreement: `--clients` (16) concurrent clients send `--requests` (96) requests per
   page; p50 / p95 / p99 and each p95 as a multiple of `/healthz`'s p95 measured the same way in
   the same run; non-2xx answers are counted; the web process's RSS is sampled every 100 ms
   (peak) and read again after the run and a 5 s rest (final). `--runs` repeats the whole
   measurement; the table gives the median of the runs.

Needs a PostgreSQL server (`--server`, RS_BENCH_POSTGRES_URL).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import re
import resource
import secrets
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_SERVER = os.environ.get(
    "RS_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
DOCS = ROOT / "docs" / "benchmarks.md"
START_MARK = "<!-- pages-benchmark:start -->"
END_MARK = "<!-- pages-benchmark:end -->"
PASSWORD = "bench-password-9f3a"  # a throwaway database
# The served app's RS_SECRET_KEY (a throwaway database): figures the benchmark computes the way
# the worker does are signed with it, so the served app reads them (app/core/stored.py).
SECRET_KEY = "bench-secret-key-not-for-production-7d1c2f0b9a8e4d6c"
ROLLOUTS = 1_000_048
SMALL_RUNS = (20_000, 20_000, 5_000, 5_096)  # with the all-rollouts run: 1,050,144 verdicts
LABELS_PER_SMALL_RUN = (2_000, 2_000, 500, 520)  # plus 15,000 elsewhere: 20,020 labels
LABELS_ELSEWHERE = 15_000
RARE_WORD, RARE_COUNT = "zanzibar", 25
LEGAL_WORDS = (
    "liability clause contract party termination notice payment indemnification warranty "
    "confidential agreement obligation breach remedy damages jurisdiction governing law "
    "assignment renewal term fee invoice delivery service supplier customer audit insurance "
    "limitation exclusion force majeure dispute arbitration amendment waiver severability "
    "intellectual property license data protection personal security incident subcontractor "
    "compliance regulation schedule annex exhibit recital definition effective date"
)


# ---------------------------------------------------------------------------- the world


def _scaled(n: int, scale: float) -> int:
    return max(1, round(n * scale))


@dataclass
class World:
    url: str
    project_id: int
    run_ids: dict[str, int]
    training_run_id: int
    queue_id: int
    queue_item_id: int
    rollout_id: int
    deep_cursor: int
    model: str
    checkpoint: str
    email: str
    token: str
    counts: dict[str, int] = field(default_factory=dict)


def database_url(server: str, scale: float) -> str:
    from sqlalchemy.engine import make_url

    name = "rs_pages_bench_" + re.sub(r"[^0-9]", "_", f"{scale:g}")
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def create_database(server: str, url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    env = {**os.environ, "RS_DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


def _vocabulary(rng: random.Random) -> list[str]:
    legal = LEGAL_WORDS.split()
    made = {"".join(rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou") for _ in range(3))}
    while len(made) < 3000:
        made.add("".join(rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou") for _ in range(3)))
    return legal + sorted(made - {RARE_WORD})


def _paragraphs(rng: random.Random, words: list[str], count: int, length: int) -> list[str]:
    weights = [1 / (rank + 1) for rank in range(len(words))]  # Zipf: a few words everywhere
    out = []
    for _ in range(count):
        chosen = rng.choices(words, weights=weights, k=length)
        out.append(" ".join(chosen).capitalize() + ".")
    return out


def _verdict_patterns(definition: Any) -> list[dict[str, Any]]:
    """32 judge answers (every pass/fail combination), scored by the app's own scoring."""
    from app.rubrics.scoring import score_answer

    keys = [c.key for c in definition.criteria]
    patterns = []
    for bits in range(2 ** len(keys)):
        answer = {
            "criteria": {
                key: {
                    "score": bool(bits >> i & 1),
                    "justification": "The response addresses the clause and cites it.",
                    "evidence": "the liability clause is capped at the fees paid",
                }
                for i, key in enumerate(keys)
            }
        }
        scored = score_answer(definition.model_dump(mode="json"), answer, None)
        patterns.append(
            {
                "answer": json.dumps(answer),
                "scores": json.dumps(
                    {
                        "criteria": scored["criteria"],
                        "raw": scored["raw"],
                        "hard_failed": scored["hard_failed"],
                        "items": [],
                    }
                ),
                "aggregate": scored["aggregate"],
                "normalized": scored["normalized"],
                "raw_text": json.dumps(answer),
            }
        )
    return patterns


def _drop_secondary_indexes(conn: Any, tables: list[str]) -> list[str]:
    """Drop the tables' non-unique, non-primary-key indexes; their definitions, to re-create."""
    rows = conn.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indrelid = ANY(%s::regclass[]) AND NOT i.indisunique AND NOT i.indisprimary",
        (tables,),
    ).fetchall()
    for name, _ in rows:
        conn.execute(f"DROP INDEX {name}")
    return [definition for _, definition in rows]


def _lowest_priority(pid: int) -> None:
    """Run a process at the lowest CPU priority (needs the right to renice it: root, or the
    same user); the machine is shared, and building the world may take its idle time only."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, 19)


def build_world(server: str, scale: float, log: Any, nice: bool = False) -> None:
    import psycopg
    from sqlmodel import Session

    import app.models  # noqa: F401  (every table, for the ORM's foreign keys)
    from app.auth import service as auth_service
    from app.core.db import get_engine
    from app.drift.models import TrainingRun
    from app.judging import configs as judge_configs
    from app.judging.models import JudgeRun
    from app.judging.schemas import JudgeConfigInput
    from app.labels.models import AnnotationQueue
    from app.llm.egress import EgressPolicy
    from app.projects import service as project_service
    from app.rubrics.builtin import get_builtin
    from app.rubrics.definition import content_hash
    from app.rubrics.models import Rubric, RubricVersion
    from app.rubrics.output_schema import build_output_schema

    url = database_url(server, scale)
    started = time.monotonic()
    log(f"creating {url.rsplit('/', 1)[-1]} and migrating it")
    create_database(server, url)
    engine = get_engine(url)
    n_rollouts = _scaled(ROLLOUTS, scale)
    small = [_scaled(n, scale) for n in SMALL_RUNS]
    label_counts = [_scaled(n, scale) for n in LABELS_PER_SMALL_RUN]
    elsewhere = _scaled(LABELS_ELSEWHERE, scale)
    rng = random.Random(13)
    definition = get_builtin("generic_pass_fail")

    with Session(engine, expire_on_commit=False) as session:
        admin = auth_service.create_user(
            session, email="bench@example.com", password=PASSWORD, is_admin=True
        )
        expert = auth_service.create_user(session, email="expert@example.com", password=PASSWORD)
        project = project_service.create_project(session, name="Scale bench", owner=admin)
        project_service.add_member(session, project, email=expert.email, role="expert", actor=admin)
        rubric = Rubric(project_id=project.id or 0, name="Generic pass/fail", mode=definition.mode)
        session.add(rubric)
        session.flush()
        version = RubricVersion(
            rubric_id=rubric.id or 0,
            project_id=project.id or 0,
            number=1,
            definition=definition.model_dump(mode="json"),
            output_schema=build_output_schema(definition),
            content_hash=content_hash(definition),
        )
        session.add(version)
        session.commit()
        config = judge_configs.create_config(
            session,
            project,
            actor=admin,
            data=JudgeConfigInput(
                name="bench judge",
                provider="openai_compat",
                model_id="judge",
                base_url="http://127.0.0.1:9/v1",
                price_input_per_1k=0.001,
                price_output_per_1k=0.002,
            ),
            egress=EgressPolicy(allow_loopback=True),
        )
        sizes = {"all": n_rollouts} | {f"run{i + 1}": n for i, n in enumerate(small)}
        run_ids = {}
        for name, size in sizes.items():
            run = JudgeRun(
                project_id=project.id or 0,
                rubric_version_id=version.id or 0,
                judge_config_id=config.id,
                judge_snapshot=judge_configs.snapshot_of(config),
                kind="standard",
                selection={"source": "all", "count": size},
                status="completed",
                items_total=size,
                items_done=size,
                settings={"neutral_score": 0.5, "pairwise": False},
                created_by_id=admin.id,
                started_at=datetime.now(UTC),
                finished_at=datetime.now(UTC),
            )
            session.add(run)
            session.flush()
            run_ids[name] = run.id or 0
        training = TrainingRun(
            project_id=project.id or 0, name="bench-grpo", sample_count=n_rollouts
        )
        session.add(training)
        queue = AnnotationQueue(
            project_id=project.id or 0,
            name="bench queue",
            rubric_version_id=version.id or 0,
            created_by_id=admin.id,
        )
        session.add(queue)
        session.commit()
        ids = {
            "project": project.id or 0,
            "version": version.id or 0,
            "admin": admin.id or 0,
            "expert": expert.id or 0,
            "training": training.id or 0,
            "queue": queue.id or 0,
        }

    words = _vocabulary(rng)
    responses = _paragraphs(rng, words, 4000, 60)
    prompts = _paragraphs(rng, words, 1000, 40)
    rare = set(rng.sample(range(n_rollouts), min(RARE_COUNT, n_rollouts)))
    models = ["policy-7b", "policy-13b", "policy-34b", "policy-70b"]
    checkpoints = [f"ckpt-{n:04d}" for n in range(0, 2000, 100)]
    now = datetime.now(UTC)
    patterns = _verdict_patterns(definition)

    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        if nice:
            _lowest_priority(int(conn.execute("SELECT pg_backend_pid()").fetchone()[0]))
        conn.execute("SET maintenance_work_mem = '1GB'")
        dropped = _drop_secondary_indexes(conn, ["rollout", "verdict", "drift_sample", "label"])
        log(f"COPY {n_rollouts:,} rollouts")
        columns = (
            "id, project_id, external_id, content_hash, input_messages, reference_documents, "
            "response, model, checkpoint, step, group_key, source_file, metadata, created_at"
        )
        with conn.cursor() as cur, cur.copy(f"COPY rollout ({columns}) FROM STDIN") as copy:
            for i in range(n_rollouts):
                rid = i + 1
                body = " ".join(rng.choice(responses) for _ in range(4))
                if i in rare:
                    body += f" Governed by the laws of {RARE_WORD.capitalize()}."
                prompt = " ".join(rng.choice(prompts) for _ in range(2))
                messages = json.dumps(
                    [
                        {"role": "system", "content": "You review contracts for a legal team."},
                        {"role": "user", "content": f"Review contract {rid}. {prompt}"},
                    ]
                )
                step = (i // 1667) % 600
                copy.write_row(
                    (
                        rid,
                        ids["project"],
                        f"r-{rid:07d}",
                        f"{rid:064x}",
                        messages,
                        "[]",
                        f"Answer {rid}: {body}",
                        models[i % 4],
                        checkpoints[step // 30],
                        step,
                        f"g-{i // 8:06d}",
                        "bench.jsonl",
                        json.dumps({"difficulty": ["easy", "medium", "hard"][i % 3]}),
                        now,
                    )
                )
        conn.execute("SELECT setval('rollout_id_seq', %s)", (n_rollouts,))

        log(f"COPY {n_rollouts + sum(small):,} verdicts")
        ranges = {"all": (1, n_rollouts)}
        start = 1
        for i, n in enumerate(small):
            ranges[f"run{i + 1}"] = (start, start + n - 1)
            start += n
        vcols = (
            "run_id, rollout_id, repeat, order_shown, answer, scores, aggregate, normalized, "
            "raw_text, parse_status, latency_ms, input_tokens, output_tokens, attempts, "
            "judge_name, created_at"
        )
        with conn.cursor() as cur, cur.copy(f"COPY verdict ({vcols}) FROM STDIN") as copy:
            for name, (first, last) in ranges.items():
                for rid in range(first, last + 1):
                    p = patterns[(rid * 2654435761 + run_ids[name]) % 32 if rid % 3 else 31]
                    copy.write_row(
                        (
                            run_ids[name],
                            rid,
                            0,
                            "",
                            p["answer"],
                            p["scores"],
                            p["aggregate"],
                            p["normalized"],
                            p["raw_text"],
                            "ok",
                            800 + rid % 400,
                            900,
                            120,
                            1,
                            "bench judge",
                            now,
                        )
                    )

        log("COPY labels, queue items and drift samples")
        labelled: list[int] = []
        for i, count in enumerate(label_counts):
            first, last = ranges[f"run{i + 1}"]
            labelled += rng.sample(range(first, last + 1), min(count, last - first + 1))
        rest = [r for r in rng.sample(range(1, n_rollouts + 1), elsewhere * 2) if r > start]
        labelled += rest[:elsewhere]
        keys = [c.key for c in definition.criteria]
        lcols = (
            "project_id, rollout_id, subject_key, rubric_version_id, queue_id, annotator_id, "
            'annotator_key, annotator_name, "values", critiques, overall_critique, shown_order, '
            "status, source, revision, created_at, updated_at, submitted_at"
        )
        with conn.cursor() as cur, cur.copy(f"COPY label ({lcols}) FROM STDIN") as copy:
            for rid in labelled:
                values = {k: bool((rid >> j) & 1) or rid % 5 == 0 for j, k in enumerate(keys)}
                copy.write_row(
                    (
                        ids["project"],
                        rid,
                        f"r:{rid}",
                        ids["version"],
                        None,
                        ids["expert"],
                        f"user:{ids['expert']}",
                        "expert@example.com",
                        json.dumps(values),
                        "{}",
                        "Checked against the contract.",
                        "",
                        "submitted",
                        "import",
                        1,
                        now,
                        now,
                        now,
                    )
                )
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY queue_item (queue_id, rollout_id, subject_key, position, labels_done) "
                "FROM STDIN"
            ) as copy,
        ):
            for position, rid in enumerate(range(start, min(start + 200, n_rollouts + 1))):
                copy.write_row((ids["queue"], rid, f"r:{rid}", position, 0))
        dcols = (
            "project_id, training_run_id, record_id, content_hash, rollout_id, step, "
            "step_mapped, recorded_at, source, reward, components, components_passed, "
            "judge_status, judge_criteria, judge_aggregate, neutral_reward, response_chars, "
            "judge_addressed, metadata, created_at"
        )
        with conn.cursor() as cur, cur.copy(f"COPY drift_sample ({dcols}) FROM STDIN") as copy:
            for rid in range(1, n_rollouts + 1):
                step = ((rid - 1) // 1667) % 600
                p = patterns[(rid * 2654435761) % 32]
                reward = 0.4 + 0.4 * (step / 600) + (rid % 7) / 70
                copy.write_row(
                    (
                        ids["project"],
                        ids["training"],
                        f"rec-{rid}",
                        f"{rid:064x}",
                        rid,
                        step,
                        False,
                        now - timedelta(seconds=n_rollouts - rid),
                        "trl",
                        round(reward, 4),
                        json.dumps({"judge": round(reward, 4), "format": 1.0}),
                        json.dumps({"judge": reward >= 0.5, "format": True}),
                        "ok",
                        json.dumps(json.loads(p["scores"])["criteria"]),
                        p["aggregate"],
                        False,
                        1500 + step,
                        False,
                        "{}",
                        now,
                    )
                )
        log(f"re-creating {len(dropped)} secondary indexes")
        for definition_sql in dropped:
            conn.execute(definition_sql)
        log("VACUUM ANALYZE")
        conn.execute("VACUUM ANALYZE")
    ensure_work_items(url, log)
    finish_drift(url, ids["training"], log)
    meta = {
        "scale": scale,
        "build_seconds": round(time.monotonic() - started),
        "ids": ids,
        "run_ids": run_ids,
        "counts": {
            "rollouts": n_rollouts,
            "verdicts": n_rollouts + sum(small),
            "labels": len(labelled),
            "drift_samples": n_rollouts,
        },
        "model": models[1],
        "checkpoint": checkpoints[3],
    }
    (ROOT / "bench" / f".pages_world_{scale:g}.json").write_text(json.dumps(meta))
    log(f"world built in {meta['build_seconds']} s")


def ensure_work_items(url: str, log: Any) -> None:
    """Give every COPYed verdict its work item, as a judge run (or an import) leaves them: the
    run's work items say which subjects it judged, and the agreement pages join labels to
    verdicts through them (app/labels/run_subjects.py). A world built without them has
    agreement figures over no items at all; this adds them to such a world too (--reuse)."""
    import psycopg

    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        missing = conn.execute(
            "SELECT count(*) FROM verdict WHERE work_item_id IS NULL AND pair_id IS NULL"
        ).fetchone()
        if not missing or not missing[0]:
            return
        log(f"work items for {missing[0]:,} verdicts")
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute(
            "INSERT INTO judge_work_item (run_id, rollout_id, subject_key, repeat, order_shown, "
            "status, attempts) SELECT run_id, rollout_id, 'r:' || rollout_id, repeat, "
            "order_shown, 'done', 1 FROM verdict WHERE work_item_id IS NULL AND pair_id IS NULL "
            "ON CONFLICT DO NOTHING"
        )
        conn.execute(
            "UPDATE verdict v SET work_item_id = w.id FROM judge_work_item w "
            "WHERE v.work_item_id IS NULL AND v.pair_id IS NULL AND w.run_id = v.run_id "
            "AND w.subject_key = 'r:' || v.rollout_id AND w.repeat = v.repeat "
            "AND w.order_shown = v.order_shown"
        )
        conn.execute("VACUUM ANALYZE judge_work_item")
        conn.execute("VACUUM ANALYZE verdict")


def finish_drift(url: str, training_run_id: int, log: Any) -> None:
    """What the drift import's worker does once the samples are stored: the run's counters and
    its dashboard series, computed in SQL and cached for this data version."""
    from sqlalchemy import func, select
    from sqlmodel import Session

    import app.models  # noqa: F401  (every table, for the ORM's foreign keys)
    from app.core.db import get_engine
    from app.drift import service as drift_service
    from app.drift.models import DriftSample, TrainingRun
    from app.projects.models import Project

    log("the training run's counters, series and signals (as the import worker does)")
    with Session(get_engine(url), expire_on_commit=False) as session:
        run = session.get(TrainingRun, training_run_id)
        assert run is not None
        row = session.execute(
            select(func.count(), func.min(DriftSample.step), func.max(DriftSample.step)).where(
                DriftSample.training_run_id == training_run_id
            )
        ).one()
        run.sample_count, run.step_min, run.step_max = int(row[0]), row[1], row[2]
        run.data_version += 1
        session.add(run)
        session.commit()
        drift_service.series(session, run)
        project = session.get(Project, run.project_id)
        assert project is not None
        drift_service.signals(session, project, run)


def finish_runs(url: str, log: Any) -> None:
    """What the worker does when a judge run finishes (app/agreement/jobs.py): the run's
    agreement figures, corrected estimates and disagreement index are computed and stored for its
    data version, so that the first visit after a restart reads them. Migrates the world first
    (a world built by an older version of the app, --reuse)."""
    from sqlalchemy import select
    from sqlmodel import Session

    import app.models  # noqa: F401  (every table, for the ORM's foreign keys)
    from app.agreement.jobs import run_figure_refresh_once
    from app.core import stored
    from app.core.config import get_settings
    from app.core.db import get_engine
    from app.core.jobs import WorkerContext
    from app.core.migrations import upgrade
    from app.drift import service as drift_service
    from app.drift.models import TrainingRun
    from app.judging.models import JudgeRun
    from app.projects.models import Project

    upgrade(url)
    os.environ["RS_SECRET_KEY"] = SECRET_KEY
    get_settings.cache_clear()
    engine = get_engine(url)
    with Session(engine) as session:
        stored.request_refresh(session, list(session.execute(select(JudgeRun.id)).scalars()))
        session.commit()
        for training_run in session.execute(select(TrainingRun)).scalars().all():
            # what the drift import's worker does last (a world built before it did, --reuse)
            project = session.get(Project, training_run.project_id)
            assert project is not None
            drift_service.signals(session, project, training_run)
    context = WorkerContext(engine, get_settings(), "bench", threading.Event())
    started = time.monotonic()
    while run_figure_refresh_once(context):
        pass
    seconds = time.monotonic() - started
    log(f"the runs' figures computed and stored, as the worker does ({seconds:.1f} s)")


def load_world(server: str, scale: float) -> World:
    import psycopg

    from app.core.db import get_engine

    url = database_url(server, scale)
    meta = json.loads((ROOT / "bench" / f".pages_world_{scale:g}.json").read_text())
    ids = meta["ids"]
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        item = conn.execute(
            "SELECT min(id) FROM queue_item WHERE queue_id = %s", (ids["queue"],)
        ).fetchone()
        rollouts = int(meta["counts"]["rollouts"])
    from sqlmodel import Session

    import app.models  # noqa: F401  (every table, for the ORM's foreign keys)
    from app.auth import service as auth_service
    from app.auth.models import User

    with Session(get_engine(url)) as session:
        admin = session.get(User, ids["admin"])
        assert admin is not None
        token = auth_service.create_api_token(session, admin, f"bench {secrets.token_hex(3)}")
    return World(
        url=url,
        project_id=ids["project"],
        run_ids=meta["run_ids"],
        training_run_id=ids["training"],
        queue_id=ids["queue"],
        queue_item_id=int(item[0]) if item else 0,
        rollout_id=rollouts // 2,
        deep_cursor=max(1, rollouts - 3000),
        model=meta["model"],
        checkpoint=meta["checkpoint"],
        email="bench@example.com",
        token=token.token,
        counts=meta["counts"],
    )


# ---------------------------------------------------------------------------- the pages


def pages(w: World) -> list[tuple[str, str, bool]]:
    """(name, path, API) for every page the issue lists, plus drift, leaderboard and slices."""
    p = w.project_id
    big, r20, r5 = w.run_ids["all"], w.run_ids["run1"], w.run_ids["run3"]
    return [
        ("rollout detail", f"/projects/{p}/rollouts/{w.rollout_id}", False),
        ("annotation page", f"/projects/{p}/queues/{w.queue_id}/items/{w.queue_item_id}", False),
        ("rollouts API, first page", f"/api/v1/projects/{p}/rollouts?limit=50", True),
        ("judge-run progress (1M run)", f"/projects/{p}/judges/runs/{big}/progress", False),
        ("judge-run page (1M run)", f"/projects/{p}/judges/runs/{big}", False),
        ("rollout list, first page", f"/projects/{p}/rollouts", False),
        ("rollout list, deep keyset page", f"/projects/{p}/rollouts?cursor={w.deep_cursor}", False),
        (
            "rollout list, filtered",
            f"/projects/{p}/rollouts?model={w.model}&checkpoint={w.checkpoint}&step_min=50",
            False,
        ),
        ("search, common word", f"/projects/{p}/rollouts?q=liability", False),
        (
            f"search, rare word ({RARE_COUNT} matches)",
            f"/projects/{p}/rollouts?q={RARE_WORD}",
            False,
        ),
        ("search, common word, ranked", f"/projects/{p}/rollouts?q=liability&sort=rank", False),
        ("agreement page, 5k run", f"/projects/{p}/agreement/runs/{r5}", False),
        ("disagreement list, 5k run", f"/projects/{p}/disagreements/{r5}", False),
        ("agreement page, 20k run", f"/projects/{p}/agreement/runs/{r20}", False),
        ("disagreement list, 20k run", f"/projects/{p}/disagreements/{r20}", False),
        ("agreement page, 1M run", f"/projects/{p}/agreement/runs/{big}", False),
        ("disagreement list, 1M run", f"/projects/{p}/disagreements/{big}", False),
        ("agreement API, 1M run", f"/api/v1/projects/{p}/runs/{big}/agreement", True),
        (
            "reward preview, 1M run, sample 5,000",
            f"/api/v1/projects/{p}/reward-preview?run_id={big}&sample=5000",
            True,
        ),
        ("drift dashboard (1M samples)", f"/projects/{p}/training-runs/{w.training_run_id}", False),
        ("leaderboard", f"/projects/{p}/agreement/leaderboard", False),
        (
            "sliced agreement, 20k run",
            f"/projects/{p}/agreement/runs/{r20}/slices?slice=model",
            False,
        ),
    ]


# ---------------------------------------------------------------------------- the server


def _rss_kib(pid: int) -> int:
    """Resident memory of the process and its children (uvicorn runs in one process here)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def start_server(url: str, port: int, memory_gb: float, log_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "RS_ENV": "production",
        "RS_SECRET_KEY": SECRET_KEY,
        "RS_DATABASE_URL": url,
        "RS_SESSION_COOKIE_SECURE": "false",
        "RS_EMBEDDED_WORKER": "false",
        "RS_DATA_DIR": str(ROOT / "bench" / ".pages_data"),
    }
    limit = int(memory_gb * 1024**3)

    def bounded() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    handle = log_path.open("wb")
    # What docs/deployment.md runs (scripts/docker-entrypoint.sh): `serve --no-migrate`.
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-migrate",
        ],
        cwd=ROOT,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        preexec_fn=bounded,
    )


async def _sign_in(client: Any, email: str) -> None:
    page = await client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, "no CSRF token on the login page"
    response = await client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token.group(1), "next": "/"},
    )
    assert response.status_code in (200, 303), response.status_code


@dataclass
class Measured:
    name: str
    latencies: list[float]
    statuses: dict[int, int]

    def q(self, fraction: float) -> float:
        values = sorted(self.latencies)
        if not values:
            return float("nan")
        index = min(len(values) - 1, max(0, int(round(fraction * len(values) + 0.5)) - 1))
        return values[index]


async def measure_page(
    base: str,
    cookies: Any,
    token: str,
    name: str,
    path: str,
    api: bool,
    clients: int,
    requests: int,
    timeout: float,
) -> Measured:
    import httpx

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    per_client = max(1, requests // clients)
    headers = {"Authorization": f"Bearer {token}"} if api else {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=base, cookies=cookies, headers=headers, timeout=timeout, limits=limits
    ) as client:

        async def one_client() -> None:
            for _ in range(per_client):
                started = time.perf_counter()
                try:
                    response = await client.get(path)
                    status = response.status_code
                except httpx.TimeoutException:
                    status = 0  # no answer within the timeout
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1

        await asyncio.gather(*(one_client() for _ in range(clients)))
    return Measured(name, latencies, statuses)


async def measure_all(
    w: World, port: int, server_pid: int, clients: int, requests: int, timeout: float, log: Any
) -> dict[str, Any]:
    import httpx

    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=timeout) as client:
        await _sign_in(client, w.email)
        cookies = client.cookies
    peak = 0
    stop = asyncio.Event()

    async def sample_memory() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _rss_kib(server_pid))
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample_memory())
    baseline_rss = _rss_kib(server_pid)
    results = []
    health = await measure_page(
        base, cookies, w.token, "/healthz", "/healthz", False, clients, requests, timeout
    )
    results.append(health)
    log(f"  /healthz p95 {health.q(0.95) * 1000:.1f} ms")
    for name, path, api in pages(w):
        m = await measure_page(base, cookies, w.token, name, path, api, clients, requests, timeout)
        results.append(m)
        bad = {k: v for k, v in m.statuses.items() if not 200 <= k < 300}
        log(
            f"  {name}: p50 {m.q(0.5) * 1000:.0f} ms, p95 {m.q(0.95) * 1000:.0f} ms"
            + (f", non-2xx {bad}" if bad else "")
            + f", RSS {_rss_kib(server_pid) / 1024:.0f} MiB"
        )
    stop.set()
    await sampler
    await asyncio.sleep(5)
    final = _rss_kib(server_pid)
    return {
        "pages": [
            {
                "name": m.name,
                "p50": m.q(0.5),
                "p95": m.q(0.95),
                "p99": m.q(0.99),
                "n": len(m.latencies),
                "statuses": {str(k): v for k, v in sorted(m.statuses.items())},
            }
            for m in results
        ],
        "rss_start_mib": baseline_rss / 1024,
        "rss_peak_mib": peak / 1024,
        "rss_final_mib": final / 1024,
    }


# ---------------------------------------------------------------------------- report


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    names = [p["name"] for p in runs[0]["pages"]]
    pages_out = []
    for index, name in enumerate(names):
        entries = [run["pages"][index] for run in runs]
        statuses: dict[str, int] = {}
        for entry in entries:
            for key, value in entry["statuses"].items():
                statuses[key] = statuses.get(key, 0) + value
        pages_out.append(
            {
                "name": name,
                **{k: statistics.median(e[k] for e in entries) for k in ("p50", "p95", "p99")},
                "n": sum(e["n"] for e in entries),
                "statuses": statuses,
            }
        )
    return {
        "pages": pages_out,
        "rss_peak_mib": statistics.median(r["rss_peak_mib"] for r in runs),
        "rss_final_mib": statistics.median(r["rss_final_mib"] for r in runs),
        "rss_start_mib": statistics.median(r["rss_start_mib"] for r in runs),
    }


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:,.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def markdown(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    health = summary["pages"][0]["p95"]
    lines = [
        f"Measured {meta['date']} on {meta['machine']}; load average {meta['load']} at the start. "
        f"World: scale {meta['scale']:g} — {meta['counts']['rollouts']:,} rollouts, "
        f"{meta['counts']['verdicts']:,} verdicts, {meta['counts']['labels']:,} labels, "
        f"{meta['counts']['drift_samples']:,} drift samples (built in {meta['build']}). "
        f"{meta['clients']} clients, {meta['requests']} requests per page, median of "
        f"{meta['runs']} run(s); web process limited to {meta['memory_gb']:g} GB of address "
        "space.",
        "",
        "| page | p50 | p95 | p99 | × `/healthz` p95 | non-2xx |",
        "|---|---|---|---|---|---|",
    ]
    for page in summary["pages"]:
        bad = {k: v for k, v in page["statuses"].items() if not k.startswith("2")}
        ratio = page["p95"] / health if health else float("nan")
        lines.append(
            f"| {page['name']} | {_ms(page['p50'])} | {_ms(page['p95'])} | {_ms(page['p99'])} "
            f"| {ratio:,.1f}× | "
            + (", ".join(f"{v}× {'timeout' if k == '0' else k}" for k, v in bad.items()) or "—")
            + " |"
        )
    lines += [
        "",
        f"Web process RSS: {summary['rss_start_mib']:,.0f} MiB after sign-in, peak "
        f"{summary['rss_peak_mib']:,.0f} MiB, {summary['rss_final_mib']:,.0f} MiB 5 s after "
        "the last request.",
    ]
    return "\n".join(lines)


def write_docs(text: str) -> None:
    current = DOCS.read_text(encoding="utf-8")
    block = f"{START_MARK}\n{text}\n{END_MARK}"
    if START_MARK in current:
        before, rest = current.split(START_MARK, 1)
        _, after = rest.split(END_MARK, 1)
        DOCS.write_text(before + block + after, encoding="utf-8")
    else:
        DOCS.write_text(current.rstrip() + "\n\n" + block + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="world size (1 = the issue's)")
    parser.add_argument("--server", default=DEFAULT_SERVER, help="PostgreSQL server URL")
    parser.add_argument("--reuse", action="store_true", help="measure the world already built")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=96, help="requests per page")
    parser.add_argument("--runs", type=int, default=1, help="measurement runs (median reported)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--timeout", type=float, default=120.0, help="per request, seconds")
    parser.add_argument("--memory-limit-gb", type=float, default=6.0)
    parser.add_argument("--build-only", action="store_true", help="build the world and stop")
    parser.add_argument(
        "--nice", action="store_true", help="build at the lowest CPU priority (shared machines)"
    )
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    def log(message: str) -> None:
        print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)

    if not args.reuse:
        if args.nice:
            _lowest_priority(os.getpid())
        build_world(args.server, args.scale, log, nice=args.nice)
    else:
        ensure_work_items(database_url(args.server, args.scale), log)
    finish_runs(database_url(args.server, args.scale), log)
    if args.build_only:
        return
    world = load_world(args.server, args.scale)
    meta_file = json.loads((ROOT / "bench" / f".pages_world_{args.scale:g}.json").read_text())
    log_path = ROOT / "bench" / ".pages_server.log"
    server = start_server(world.url, args.port, args.memory_limit_gb, log_path)
    try:
        import httpx

        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{args.port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, f"the server stopped; see {log_path}"
            time.sleep(0.2)
        load = os.getloadavg()[0]
        runs = []
        for number in range(args.runs):
            log(f"measurement run {number + 1} of {args.runs}")
            runs.append(
                asyncio.run(
                    measure_all(
                        world,
                        args.port,
                        server.pid,
                        args.clients,
                        args.requests,
                        args.timeout,
                        log,
                    )
                )
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
    summary = summarise(runs)
    cpu = "?"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load": f"{load:.1f}",
        "scale": args.scale,
        "counts": world.counts,
        "build": f"{meta_file['build_seconds']} s",
        "clients": args.clients,
        "requests": args.requests,
        "runs": args.runs,
        "memory_gb": args.memory_limit_gb,
    }
    text = markdown(summary, meta)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "summary": summary, "runs": runs}, indent=1))
    if args.write_docs:
        write_docs(text)


if __name__ == "__main__":
    main()
