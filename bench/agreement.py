"""Agreement benchmark: the run's agreement page and API and the disagreement list (page and API)
on PostgreSQL, for a run of many verdicts with many expert labels.

    .venv/bin/python bench/agreement.py                             # 100k verdicts, 20k labels
    .venv/bin/python bench/agreement.py --verdicts 1000000 --labels 20000
    RS_BENCH_APP_ROOT=/path/to/an/older/tree .venv/bin/python bench/agreement.py   # "before"

It creates a fresh PostgreSQL database migrated by Alembic and fills the app's own tables in
bulk (multi-row INSERTs through SQLAlchemy, not the import path): one project, a pass/fail
rubric version, N rollouts (~200 bytes each), one completed judge run with one verdict per
rollout (scored by the judge engine's own code, raw text included), and M submitted labels on
the first M rollouts. Then it times the pages and APIs in-process (TestClient, one client,
sequential requests): the first request, the next ones (a per-run cache may answer them), and
the computation with any cache emptied before each request. RS_BENCH_APP_ROOT puts another
checkout's `app` package first on the path, to measure an earlier implementation on the same
world. Needs a PostgreSQL server (RS_BENCH_POSTGRES_URL).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench.databases
sys.path.insert(0, os.environ.get("RS_BENCH_APP_ROOT") or str(ROOT))

from bench.databases import create_database, drop_database  # noqa: E402

DEFAULT_SERVER = os.environ.get(
    "RS_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
PASSWORD = "benchmark password"
CHUNK = 5_000


def _insert(session: Any, model: Any, rows: list[dict[str, Any]]) -> None:
    from sqlalchemy import insert

    for start in range(0, len(rows), CHUNK):
        session.execute(insert(model), rows[start : start + CHUNK])
    session.commit()


def build_world(url: str, verdicts: int, labels: int) -> dict[str, Any]:
    from sqlmodel import Session, col, select

    from app.auth import service as auth_service
    from app.core.clock import utcnow
    from app.core.db import get_engine
    from app.judging.models import JudgeRun, JudgeWorkItem, Verdict
    from app.judging.storage import load_plan
    from app.judging.verdicts import PreparedItem, score_parsed, verdict_row
    from app.labels.models import Label
    from app.projects import service as project_service
    from app.rollouts.models import Rollout
    from app.rubrics.builtin import BUILTIN_TEMPLATES
    from app.rubrics.definition import content_hash
    from app.rubrics.models import Rubric, RubricVersion
    from app.rubrics.output_schema import build_output_schema

    rng = random.Random(1)
    engine = get_engine(url)
    with Session(engine, expire_on_commit=False) as session:
        user = auth_service.create_user(
            session, email="bench@example.com", password=PASSWORD, display_name="Bench Expert"
        )
        project = project_service.create_project(session, name="Agreement benchmark", owner=user)
        definition = BUILTIN_TEMPLATES["generic_pass_fail"]
        keys = [c.key for c in definition.criteria]
        rubric = Rubric(project_id=project.id or 0, name="Bench rubric", mode=definition.mode)
        session.add(rubric)
        session.flush()
        version = RubricVersion(
            rubric_id=rubric.id or 0,
            project_id=project.id or 0,
            number=1,
            definition=definition.model_dump(mode="json"),
            output_schema=build_output_schema(definition),
            content_hash=content_hash(definition),
            change_note="benchmark",
        )
        session.add(version)
        session.commit()
        now = utcnow()
        _insert(
            session,
            Rollout,
            [
                {
                    "project_id": project.id,
                    "external_id": f"bench-{i:07d}",
                    "content_hash": f"{i:064d}",
                    "input_messages": [{"role": "user", "content": f"Question {i}"}],
                    "reference_documents": [],
                    "metadata_": {},
                    "response": f"An answer to question {i}, long enough to look like one.",
                    "model": "policy-a",
                    "step": i % 600,
                    "created_at": now,
                }
                for i in range(verdicts)
            ],
        )
        rollout_ids = list(
            session.exec(
                select(Rollout.id).where(Rollout.project_id == project.id).order_by(col(Rollout.id))
            ).all()
        )
        run = JudgeRun(
            project_id=project.id or 0,
            rubric_version_id=version.id or 0,
            judge_snapshot={"name": "bench-judge", "provider": "openai_compat", "model_id": "x"},
            status="completed",
            items_total=verdicts,
            items_done=verdicts,
        )
        session.add(run)
        session.commit()
        _insert(
            session,
            JudgeWorkItem,
            [
                {"run_id": run.id, "rollout_id": rid, "subject_key": f"r:{rid}", "status": "done"}
                for rid in rollout_ids
            ],
        )
        items = dict(
            session.exec(
                select(JudgeWorkItem.rollout_id, JudgeWorkItem.id).where(
                    JudgeWorkItem.run_id == run.id
                )
            ).all()
        )
        plan = load_plan(engine, run.id or 0)
        assert plan is not None
        shapes: dict[tuple[bool, ...], dict[str, Any]] = {}
        rows: list[dict[str, Any]] = []
        judged: dict[int, tuple[bool, ...]] = {}
        for rid in rollout_ids:
            shape = tuple(rng.random() < 0.7 for _ in keys)
            judged[int(rid or 0)] = shape
            if shape not in shapes:
                answer = {
                    "criteria": {
                        k: {"evidence": f"evidence {k}", "justification": f"why {k}", "score": v}
                        for k, v in zip(keys, shape, strict=True)
                    },
                    "aggregate_score": 0,
                }
                prepared = PreparedItem(items[rid], int(rid or 0), None, 0, "", None)
                shapes[shape] = verdict_row(
                    plan, prepared, status="ok", result=score_parsed(plan, answer)
                )
            rows.append(
                {**shapes[shape], "work_item_id": items[rid], "rollout_id": rid, "created_at": now}
            )
        _insert(session, Verdict, rows)
        label_rows = []
        for rid in rollout_ids[:labels]:
            # The expert agrees with the judge 80% of the time on each criterion.
            values = {
                k: (v if rng.random() < 0.8 else not v)
                for k, v in zip(keys, judged[int(rid or 0)], strict=True)
            }
            label_rows.append(
                {
                    "project_id": project.id,
                    "rollout_id": rid,
                    "subject_key": f"r:{rid}",
                    "rubric_version_id": version.id,
                    "annotator_id": user.id,
                    "annotator_key": f"user:{user.id}",
                    "annotator_name": "Bench Expert",
                    "values": values,
                    "critiques": {},
                    "overall_critique": "",
                    "shown_order": "",
                    "status": "submitted",
                    "source": "import",
                    "revision": 1,
                    "created_at": now,
                    "updated_at": now,
                    "submitted_at": now,
                }
            )
        _insert(session, Label, label_rows)
        from sqlalchemy import text

        session.execute(text("ANALYZE"))
        session.commit()
        return {"project_id": project.id, "run_id": run.id, "user": user.email}


def _clear_caches() -> None:
    """Empty whatever per-run caches the measured implementation has."""
    import importlib

    for module, names in (
        ("app.agreement.service", ("_FIGURES", "_CORRECTED", "_RUN_SUMS")),
        ("app.agreement.leaderboard", ("_RUN_FIGURES",)),
        ("app.labels.review", ("_INDEXES",)),
        ("app.labels.run_subjects", ("_SUMMARIES", "_LABELLED")),
    ):
        try:
            loaded = importlib.import_module(module)
        except ImportError:
            continue
        for name in names:
            cache = getattr(loaded, name, None)
            if cache is not None:
                cache.clear()


def measure(url: str, info: dict[str, Any], runs: int) -> dict[str, dict[str, Any]]:
    import tempfile

    from fastapi.testclient import TestClient

    from app.core.config import Settings
    from app.main import create_app

    settings = Settings(
        database_url=url,
        data_dir=Path(tempfile.mkdtemp()),
        env="test",
        secret_key="x" * 40,
    )
    client = TestClient(create_app(settings))
    page = client.get("/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    login = client.post(
        "/login",
        data={"email": info["user"], "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert login.status_code in (302, 303), login.text[:300]
    project, run = info["project_id"], info["run_id"]
    targets = {
        "agreement page": f"/projects/{project}/agreement/runs/{run}",
        "agreement API": f"/api/v1/projects/{project}/runs/{run}/agreement",
        "disagreement list page": f"/projects/{project}/disagreements/{run}",
        "disagreement list API": f"/api/v1/projects/{project}/runs/{run}/disagreements",
    }
    results: dict[str, dict[str, Any]] = {}
    for name, path in targets.items():
        _clear_caches()
        started = time.perf_counter()
        response = client.get(path)
        first = time.perf_counter() - started
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
        size = len(response.content)
        warm = []
        for _ in range(runs):
            started = time.perf_counter()
            assert client.get(path).status_code == 200
            warm.append(time.perf_counter() - started)
        uncached = []
        for _ in range(runs):
            _clear_caches()
            started = time.perf_counter()
            assert client.get(path).status_code == 200
            uncached.append(time.perf_counter() - started)
        results[name] = {
            "first_s": round(first, 3),
            "warm_median_s": round(statistics.median(warm), 3),
            "uncached_median_s": round(statistics.median(uncached), 3),
            "bytes": size,
        }
        print(f"{name:24s} {json.dumps(results[name])}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--verdicts", type=int, default=100_000)
    parser.add_argument("--labels", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3, help="timed requests of each kind")
    parser.add_argument("--url", help="reuse a database this script built (with --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the database; print its URL")
    args = parser.parse_args()
    import app

    print(f"app from {Path(app.__file__).parent}", flush=True)
    url = args.url or create_database(DEFAULT_SERVER, "rs_agreement_bench")
    try:
        started = time.perf_counter()
        info_path = Path(f"/tmp/rs-agreement-bench-{uuid.uuid5(uuid.NAMESPACE_URL, url)}.json")
        if args.url and info_path.exists():
            info = json.loads(info_path.read_text())
        else:
            info = build_world(url, args.verdicts, args.labels)
            info_path.write_text(json.dumps(info))
            print(
                f"built {args.verdicts:,} verdicts and {args.labels:,} labels in "
                f"{time.perf_counter() - started:.0f} s",
                flush=True,
            )
        results = measure(url, info, args.runs)
        print(json.dumps({"verdicts": args.verdicts, "labels": args.labels, **results}))
    finally:
        if args.keep or args.url:
            print(f"database kept: {url}")
        else:
            drop_database(DEFAULT_SERVER, url)


if __name__ == "__main__":
    main()
