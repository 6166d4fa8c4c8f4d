"""Judge throughput: the durable judge executor against the local judge server (200 ms a call).

    .venv/bin/python bench/judge_throughput.py [--items 5000] [--concurrency 128]
        [--latency 0.2] [--workers 1,2] [--repeat 3] [--database-url URL] [--json]

Measurements, each over the same rollouts and rubric (generic pass/fail, a 6.5 KB judge
prompt), all repeated `--repeat` times in turn; the run with the median rate is reported:
  1. the executor, no faults, once per `--workers` count: N worker processes share
     `--concurrency` calls in flight (concurrency / N each): rate vs the ideal
     concurrency / latency;
  2. the executor (first workers count) with 20% of calls failing transiently (429 with
     Retry-After, 500): every item must still end with a good verdict (none lost or doubled);
  3. the baseline: a plain thread pool with one thread per in-flight call, as in the reference
     Lambda reward handler (render, POST, parse, score; it stores nothing).
The judge server runs in its own process. The executor's rate includes claiming, rendering,
validating, scoring and storing every verdict in the database (SQLite unless --database-url),
from the moment the warmed-up worker processes may start until the run is marked completed.
CPU time is reported per verdict for the workers, the judge server, PostgreSQL and the machine.
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


class MachineCpu:
    """CPU seconds used by the whole machine, and by PostgreSQL's processes, between two reads.

    Read from /proc (Linux): the machine's busy time from /proc/stat, PostgreSQL's as the sum of
    every `postgres` process plus the postmaster's reaped children (backends that exited)."""

    def __init__(self) -> None:
        self.tick = os.sysconf("SC_CLK_TCK")
        self.start = self._read()

    def _read(self) -> tuple[float, float]:
        try:
            fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        except OSError:
            return (0.0, 0.0)
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
        busy = (user + nice + system + irq + softirq + steal) / self.tick
        postgres = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:  # the process ended meanwhile
                continue
            name = text[text.index("(") + 1 : text.rindex(")")]
            if name != "postgres" and not name.startswith("postgres:"):
                continue
            values = text[text.rindex(")") + 2 :].split()
            # utime, stime, cutime, cstime are fields 14-17 (1-based) of /proc/<pid>/stat
            postgres += sum(int(v) for v in values[11:15])
        return (busy, postgres / self.tick)

    def used(self) -> dict[str, float]:
        busy, postgres = self._read()
        return {"machine_s": busy - self.start[0], "postgres_s": postgres - self.start[1]}


def _serve(conn: Any, options: dict[str, Any]) -> None:
    """Child process: run the judge server until told to stop, then report its counters and the
    CPU time it used while serving."""
    from app.core.gc_tuning import tune_gc
    from tests.support.judge_server import FaultProbability, JudgeServer

    faults = options.pop("fault_rates", None)
    plan = FaultProbability(faults, seed=7) if faults else None
    # The server stands in for a remote LLM service, so it should cost this machine as little
    # as it can: keep few request records, and spare the garbage collector the long-lived
    # objects of the imports (gc.freeze) and the short-lived ones of each request (gen-0
    # threshold), as the worker does (app/core/gc_tuning.py).
    with JudgeServer(faults=plan, max_records=100, **options) as server:
        tune_gc()
        conn.send(server.port)
        cpu_start = time.process_time()
        conn.recv()  # any message: stop
        conn.send(
            {
                "requests": server.requests,
                "faults": server.faults,
                "cpu_s": time.process_time() - cpu_start,
            }
        )


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
    from tests.support.factories import insert_rollouts, make_project, make_user, make_version

    migrations.upgrade(database_url)
    engine = get_engine(database_url)
    with Session(engine, expire_on_commit=False) as session:
        owner = make_user(session, f"bench-{time.time_ns()}@example.com")
        project = make_project(session, owner, f"Judge throughput {time.time_ns()}")
        version = make_version(session, project)
        insert_rollouts(session, project, items)
    return project, version


def _work(database_url: str, run_id: int, label: str, started: Any, cpu: Any) -> None:
    """A worker process: judge the run until no item is left (what `rubric-studio worker` does
    for a judge run, without the polling loop around it); reports the CPU time it used."""
    from app.core.db import get_engine
    from app.core.gc_tuning import tune_gc
    from app.judging import engine as judge_engine
    from app.llm.egress import EgressPolicy

    engine = get_engine(database_url)
    # Warm up as a long-running worker is after its first run: the provider's HTTP client
    # imported (lazily, in make_provider) and a database connection open in the pool.
    import app.llm.openai_compat  # noqa: F401

    with engine.connect():
        pass
    tune_gc()  # as `rubric-studio worker` does (app/worker.py)
    started.wait()
    cpu_start = time.process_time()
    options = judge_engine.EngineOptions(
        worker_id=f"bench-{label}",
        lease_seconds=120.0,
        # The benchmark's judge server listens on 127.0.0.1.
        egress=EgressPolicy(allow_loopback=True),
    )
    judge_engine.work_on_run(engine, run_id, options)
    cpu.put(time.process_time() - cpu_start)


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
    from tests.support.factories import make_judge_config, start_runs

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
    cpu_used = context.Queue()
    processes = [
        context.Process(target=_work, args=(database_url, run.id, f"{label}-{n}", go, cpu_used))
        for n in range(workers)
    ]
    for process in processes:
        process.start()
    time.sleep(3.0)  # let every process import the app before the clock starts
    machine = MachineCpu()
    started, started_wall = time.perf_counter(), time.time()
    go.set()
    worker_cpu_s = sum(cpu_used.get() for _ in processes)
    used = machine.used()
    for process in processes:
        process.join()
    until_exit = time.perf_counter() - started
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
        assert final is not None and final.finished_at is not None
    # The run's duration: from the moment the workers may start until the run is marked
    # completed (every verdict stored); the worker processes' own exit comes after and is not
    # part of judging (it is reported as until_exit_s).
    elapsed = final.finished_at.timestamp() - started_wall
    return {
        "workers": workers,
        "concurrency_per_worker": concurrency // workers,
        "elapsed_s": elapsed,
        "until_exit_s": until_exit,
        "verdicts": sum(by_status.values()),
        "distinct_items": distinct_items,
        "by_status": by_status,
        "status": final.status,
        "items": final.items_total,
        "cpu": {"workers_s": worker_cpu_s, **used},
    }


def _baseline_run(database_url: str, project: Any, version: Any, base_url: str, threads: int):
    """One thread per in-flight call, as the reference Lambda handler does (no storage)."""
    import httpx
    from sqlmodel import Session, select

    from app.core.db import get_engine
    from app.judging.verdicts import RunPlan, interpret, rollout_context
    from app.rollouts.models import Rollout
    from app.rubrics.definition import RubricDefinition
    from app.rubrics.prompting import prepare_rubric, render_prompt

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
    prepared = prepare_rubric(defn)  # as the executor does: once, not per call

    def judge(rollout: Rollout) -> bool:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(timeout=10.0)
        prompt = render_prompt(defn, rollout_context(rollout), prepared)
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

    machine = MachineCpu()
    cpu_start = time.process_time()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(judge, rollouts))
    elapsed = time.perf_counter() - started
    return {
        "threads": threads,
        "elapsed_s": elapsed,
        "verdicts": sum(results),
        "items": len(rollouts),
        "cpu": {"workers_s": time.process_time() - cpu_start, **machine.used()},
    }


def _measure_once(args: argparse.Namespace, common: tuple[Any, ...]) -> dict[str, dict[str, Any]]:
    """Every measurement once, in a fixed order: the executor per worker count, the executor
    with transient faults, the thread-pool baseline."""
    worker_counts = [int(n) for n in str(args.workers).split(",") if n.strip()]
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
    results[f"{FAULTY_PREFIX}{worker_counts[0]} worker(s), 20% transient faults"] = faulty
    with ServerProcess(latency_s=args.latency) as server:
        baseline = _baseline_run(*common, server.base_url, args.concurrency)
        baseline["server"] = server.counters()
    results[f"thread pool, {args.concurrency} threads (baseline)"] = baseline
    ideal = args.concurrency / args.latency
    cpus = os.cpu_count() or 1
    for result in results.values():
        result["rate"] = result["items"] / result["elapsed_s"]
        result["share_of_ideal"] = result["rate"] / ideal
        cpu = result["cpu"]
        cpu["server_s"] = result["server"]["cpu_s"]
        # CPU milliseconds per verdict, by component, and how busy the machine was.
        cpu["ms_per_item"] = {
            "worker": 1000 * cpu["workers_s"] / result["items"],
            "judge_server": 1000 * cpu["server_s"] / result["items"],
            "postgres": 1000 * cpu["postgres_s"] / result["items"],
            "machine": 1000 * cpu["machine_s"] / result["items"],
        }
        cpu["machine_busy"] = cpu["machine_s"] / (result["elapsed_s"] * cpus)
    return results


FAULTY_PREFIX = "executor, faults: "


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument(
        "--workers", default="1,2", help="executor worker process counts to measure, e.g. 1,2"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of every measurement")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    ideal = args.concurrency / args.latency
    # Other work on the machine slows every figure: record how busy it was.
    load_before = os.getloadavg()[0]

    runs: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        project, version = _setup(url, args.items)
        for _ in range(max(1, args.repeat)):
            for name, result in _measure_once(args, (url, project, version)).items():
                runs.setdefault(name, []).append(result)

    # The run with the median rate stands for each measurement (the middle one of an odd count).
    median = {
        name: sorted(rs, key=lambda r: r["rate"])[(len(rs) - 1) // 2] for name, rs in runs.items()
    }
    clean = {
        n: r
        for n, r in median.items()
        if n.startswith("executor") and not n.startswith(FAULTY_PREFIX)
    }
    best = max(clean.values(), key=lambda r: r["rate"])
    faulty_runs = next(rs for n, rs in runs.items() if n.startswith(FAULTY_PREFIX))
    figures: dict[str, Any] = {
        "items": args.items,
        "concurrency": args.concurrency,
        "latency_s": args.latency,
        "ideal_rate": ideal,
        "database": url.split(":")[0],
        "cpus": os.cpu_count(),
        "repeat": args.repeat,
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "median": median,
        "rates": {name: [r["rate"] for r in rs] for name, rs in runs.items()},
        "runs": runs,
    }
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
    else:
        print(f"ideal: {ideal:.0f}/s ({args.concurrency} calls in flight, {args.latency}s each)")
        load = figures["load_average_1min"]
        before, after = load["before"], load["after"]
        print(f"machine: {os.cpu_count()} CPUs, load average {before:.1f} -> {after:.1f}")
        print(f"median of {args.repeat} run(s) of each measurement; every run's rate in brackets")
        for name, result in median.items():
            every = ", ".join(f"{rate:.0f}" for rate in figures["rates"][name])
            print(
                f"{name:52s} {result['items']} items in {result['elapsed_s']:6.2f}s = "
                f"{result['rate']:4.0f}/s ({100 * result['share_of_ideal']:5.1f}% of ideal) "
                f"[{every}]"
            )
            per_item = result["cpu"]["ms_per_item"]
            print(
                f"{'':52s} CPU ms/item: worker {per_item['worker']:.2f}, judge server "
                f"{per_item['judge_server']:.2f}, PostgreSQL {per_item['postgres']:.2f}, "
                f"machine {per_item['machine']:.2f}; machine "
                f"{100 * result['cpu']['machine_busy']:.0f}% busy"
            )
        for run in faulty_runs:
            print(f"faults injected: {run['server']['faults']}; verdicts: {run['by_status']}")

    ok = best["share_of_ideal"] >= MIN_SHARE_OF_IDEAL and best["verdicts"] == args.items
    no_loss = all(
        run["status"] == "completed"
        and run["verdicts"] == run["distinct_items"] == args.items
        and run["by_status"] == {"ok": args.items}
        for run in faulty_runs
    )
    if not ok:
        print(f"FAIL: the executor reached less than {MIN_SHARE_OF_IDEAL:.0%} of the ideal rate")
    if not no_loss:
        print("FAIL: with transient faults some items have no good verdict")
    return 0 if ok and no_loss else 1


if __name__ == "__main__":
    sys.exit(main())
