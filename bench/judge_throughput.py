"""Judge throughput: the durable judge executor against the local judge server (200 ms a call).

    .venv/bin/python bench/judge_throughput.py [--items 5000] [--concurrency 128]
        [--latency 0.2] [--workers 1,2] [--database-url URL] [--json]

Measurements in one run, each over the same rollouts and rubric (generic pass/fail, a 6.5 KB
judge prompt):
  1. the executor, no faults, once per `--workers` count: N worker processes share
     `--concurrency` calls in flight (concurrency / N each): rate vs the ideal
     concurrency / latency;
  2. the executor (first workers count) with 20% of calls failing transiently (429 with
     Retry-After, 500): every item must still end with a good verdict (none lost or doubled);
  3. the baseline: a plain thread pool with one thread per in-flight call, as in the reference
     Lambda reward handler (render, POST, parse, score; it stores nothing).
The judge server runs in its own process. The executor's rate includes claiming, rendering,
validating, scoring and storing every verdict in the database (SQLite unless --database-url).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MIN_SHARE_OF_IDEAL = 0.90


def _serve(conn: Any, options: dict[str, Any]) -> None:
    """Child process: run the judge server until told to stop, then report its counters."""
    from tests.support.judge_server import FaultProbability, JudgeServer

    faults = options.pop("fault_rates", None)
    plan = FaultProbability(faults, seed=7) if faults else None
    with JudgeServer(faults=plan, **options) as server:
        conn.send(server.port)
        conn.recv()  # any message: stop
        conn.send({"requests": server.requests, "faults": server.faults})


class ServerProcess:
    def __init__(self, **options: Any) -> None:
        context = mp.get_context("spawn")
        self._parent, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, options), daemon=True)

    def __enter__(self) -> ServerProcess:
        self.process.start()
        self.port = self._parent.recv()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        return self

    def counters(self) -> dict[str, Any]:
        self._parent.send("stop")
        result: dict[str, Any] = self._parent.recv()
        return result

    def __exit__(self, *exc: object) -> None:
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.terminate()


def _setup(database_url: str, items: int) -> tuple[Any, Any]:
    from sqlmodel import Session

    from app.core import migrations
    from app.core.db import get_engine
    from tests.integration.judging.helpers import make_rollouts, make_version
    from tests.support.factories import make_project, make_user

    migrations.upgrade(database_url)
    engine = get_engine(database_url)
    with Session(engine, expire_on_commit=False) as session:
        owner = make_user(session, f"bench-{time.time_ns()}@example.com")
        project = make_project(session, owner, f"Judge throughput {time.time_ns()}")
        version = make_version(session, project)
        make_rollouts(session, project, items)
    return project, version


def _work(database_url: str, run_id: int, label: str, started: Any) -> None:
    """A worker process: judge the run until no item is left (what `rubric-studio worker` does
    for a judge run, without the polling loop around it)."""
    from app.core.db import get_engine
    from app.judging import engine as judge_engine

    engine = get_engine(database_url)
    started.wait()
    options = judge_engine.EngineOptions(worker_id=f"bench-{label}", lease_seconds=120.0)
    judge_engine.work_on_run(engine, run_id, options)


def _executor_run(
    database_url: str,
    project: Any,
    version: Any,
    base_url: str,
    concurrency: int,
    workers: int,
    label: str,
) -> dict[str, Any]:
    from sqlmodel import Session, func, select

    from app.core.db import get_engine
    from app.judging.models import JudgeRun, Verdict
    from tests.integration.judging.helpers import make_judge_config, start_runs

    engine = get_engine(database_url)
    with Session(engine, expire_on_commit=False) as session:
        config = make_judge_config(
            session,
            project,
            name=f"bench {label} {time.time_ns()}",
            base_url=base_url,
            concurrency=concurrency // workers,
            timeout_s=10.0,
            max_attempts=10,
            base_delay_s=0.05,
            max_delay_s=1.0,
        )
        (run,) = start_runs(session, project, version, [config])
    context = mp.get_context("spawn")
    go = context.Event()
    processes = [
        context.Process(target=_work, args=(database_url, run.id, f"{label}-{n}", go))
        for n in range(workers)
    ]
    for process in processes:
        process.start()
    time.sleep(3.0)  # let every process import the app before the clock starts
    started = time.perf_counter()
    go.set()
    for process in processes:
        process.join()
    elapsed = time.perf_counter() - started
    with Session(engine) as session:
        by_status = dict(
            session.exec(
                select(Verdict.parse_status, func.count())
                .where(Verdict.run_id == run.id)
                .group_by(Verdict.parse_status)
            ).all()
        )
        distinct_items = session.exec(
            select(func.count(func.distinct(Verdict.work_item_id))).where(Verdict.run_id == run.id)
        ).one()
        final = session.get(JudgeRun, run.id)
        assert final is not None
    return {
        "workers": workers,
        "concurrency_per_worker": concurrency // workers,
        "elapsed_s": elapsed,
        "verdicts": sum(by_status.values()),
        "distinct_items": distinct_items,
        "by_status": by_status,
        "status": final.status,
        "items": final.items_total,
    }


def _baseline_run(database_url: str, project: Any, version: Any, base_url: str, threads: int):
    """One thread per in-flight call, as the reference Lambda handler does (no storage)."""
    import httpx
    from sqlmodel import Session, select

    from app.core.db import get_engine
    from app.judging.engine import RunPlan, interpret, rollout_context
    from app.rollouts.models import Rollout
    from app.rubrics.definition import RubricDefinition
    from app.rubrics.prompting import render_prompt

    defn = RubricDefinition.model_validate(version.definition)
    plan = RunPlan(
        run_id=0,
        kind="baseline",
        status="running",
        definition=defn,
        definition_dict=defn.model_dump(mode="json"),
        output_schema=version.output_schema,
        snapshot={},
        judge_name="baseline",
        neutral_score=0.5,
    )
    with Session(get_engine(database_url)) as session:
        rollouts = list(session.exec(select(Rollout).where(Rollout.project_id == project.id)))
    local = threading.local()
    url = f"{base_url}/chat/completions"

    def judge(rollout: Rollout) -> bool:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(timeout=10.0)
        prompt = render_prompt(defn, rollout_context(rollout))
        body = {
            "model": "judge-test",
            "messages": prompt.messages(),
            "max_tokens": 1024,
            "temperature": 0.0,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "judge_answer", "schema": version.output_schema},
            },
        }
        reply = client.post(url, json=body)
        reply.raise_for_status()
        interpret(plan, reply.json()["choices"][0]["message"]["content"])
        return True

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(judge, rollouts))
    elapsed = time.perf_counter() - started
    return {
        "threads": threads,
        "elapsed_s": elapsed,
        "verdicts": sum(results),
        "items": len(rollouts),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument(
        "--workers", default="1,2", help="executor worker process counts to measure, e.g. 1,2"
    )
    parser.add_argument("--database-url", default="")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    ideal = args.concurrency / args.latency
    worker_counts = [int(n) for n in str(args.workers).split(",") if n.strip()]
    # Other work on the machine slows every figure: record how busy it was.
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        project, version = _setup(url, args.items)
        common = (url, project, version)
        results: dict[str, dict[str, Any]] = {}
        for count in worker_counts:
            with ServerProcess(latency_s=args.latency) as server:
                name = f"executor, {count} worker process{'es' if count > 1 else ''}"
                results[name] = _executor_run(
                    *common, server.base_url, args.concurrency, count, f"clean{count}"
                )
                results[name]["server"] = server.counters()
        with ServerProcess(
            latency_s=args.latency,
            retry_after_s=0.2,
            fault_rates={"rate_limit": 0.1, "server_error": 0.1},
        ) as server:
            faulty = _executor_run(
                *common, server.base_url, args.concurrency, worker_counts[0], "faults"
            )
            faulty["server"] = server.counters()
        results[f"executor, {worker_counts[0]} worker(s), 20% transient faults"] = faulty
        with ServerProcess(latency_s=args.latency) as server:
            baseline = _baseline_run(*common, server.base_url, args.concurrency)
            server.counters()
        results[f"thread pool, {args.concurrency} threads (baseline)"] = baseline

    for result in results.values():
        result["rate"] = result["items"] / result["elapsed_s"]
        result["share_of_ideal"] = result["rate"] / ideal
    best = max(
        (r for name, r in results.items() if name.startswith("executor") and r is not faulty),
        key=lambda r: r["rate"],
    )
    figures: dict[str, Any] = {
        "items": args.items,
        "concurrency": args.concurrency,
        "latency_s": args.latency,
        "ideal_rate": ideal,
        "database": url.split(":")[0],
        "cpus": os.cpu_count(),
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "results": results,
    }
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
    else:
        print(f"ideal: {ideal:.0f}/s ({args.concurrency} calls in flight, {args.latency}s each)")
        load = figures["load_average_1min"]
        before, after = load["before"], load["after"]
        print(f"machine: {os.cpu_count()} CPUs, load average {before:.1f} -> {after:.1f}")
        for name, result in results.items():
            print(
                f"{name:48s} {result['items']} items in {result['elapsed_s']:6.2f}s = "
                f"{result['rate']:4.0f}/s ({100 * result['share_of_ideal']:5.1f}% of ideal)"
            )
        print(f"faults injected: {faulty['server']['faults']}; verdicts: {faulty['by_status']}")

    ok = best["share_of_ideal"] >= MIN_SHARE_OF_IDEAL and best["verdicts"] == args.items
    no_loss = (
        faulty["status"] == "completed"
        and faulty["verdicts"] == faulty["distinct_items"] == args.items
        and faulty["by_status"] == {"ok": args.items}
    )
    if not ok:
        print(f"FAIL: the executor reached less than {MIN_SHARE_OF_IDEAL:.0%} of the ideal rate")
    if not no_loss:
        print("FAIL: with transient faults some items have no good verdict")
    return 0 if ok and no_loss else 1


if __name__ == "__main__":
    sys.exit(main())
