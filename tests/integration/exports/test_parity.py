"""Parity (the acceptance test): for the gold items of a demo-like project, the studio's own
reward (a real judge run against the local judge server, then the reward from stored verdicts),
the exported TRL function, verl compute_score (loaded by verl's own loader when installed),
the OpenRLHF reward_func (loaded by OpenRLHF's executor when installed), all calling the same
judge server, and the exported Lambda handler (unzipped alone, Bedrock answered by a Stubber
with the same judge answers) are identical. Half the rollouts carry a reference answer: the
studio stores it as an object, the trainers get its JSON text (verl's usual ground_truth)."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.core.config import Settings
from app.exports import service as export_service
from app.exports.targets import TargetOptions
from app.rewards import outcomes as reward_outcomes
from app.rewards import service as reward_service
from tests.integration.exports.world import (
    build_world,
    label_gold,
    probe_world,
    run_judge,
    verdicts_by_rollout,
)
from tests.support.ecosystem import REQUIRED, require, verl_load_extern_object
from tests.support.judge_server import JudgeServer
from tests.unit.exports.nova_models import NOVA_OUTPUT
from tests.unit.exports.package_env import run_lambda


@pytest.fixture
def judge_server():
    with JudgeServer() as server:
        yield server


def _load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _verl_loader(path: Path, name: str) -> Any:
    """verl's own loader when verl is installed, else the same file import it performs."""
    if importlib.util.find_spec("verl") is None and not REQUIRED:
        return getattr(_load(path, f"verl_{name}"), name)
    return verl_load_extern_object()(module_path=str(path), object_name=name)


def _openrlhf_rewards(path: Path, queries: list[str], prompts: list[str], labels: list[str]):
    """OpenRLHF's own executor (one query per call, in threads) when installed, else its
    loading code: spec_from_file_location("reward_func", path).reward_func."""
    if importlib.util.find_spec("openrlhf") is None and not REQUIRED:
        reward_func = _load(path, "reward_func").reward_func
        return [
            reward_func([q], [p], [lab]) for q, p, lab in zip(queries, prompts, labels, strict=True)
        ]
    executor = require("openrlhf.utils.agent").SingleTurnAgentExecutor(remote_rm_url=str(path))
    return asyncio.run(executor._fetch_rewards_via_func(queries, prompts, labels))


def _as_float(value: Any) -> float:
    return float(value.flatten()[0].item()) if hasattr(value, "flatten") else float(value[0])


def test_studio_lambda_trl_verl_and_openrlhf_rewards_are_identical(
    client: TestClient,
    session: Session,
    engine,
    settings: Settings,
    judge_server: JudgeServer,
    tmp_path: Path,
) -> None:
    world = build_world(session, judge_server.base_url, reference_answers=True)
    run = run_judge(session, engine, world)
    assert run.status == "completed" and run.items_done == len(world.rollouts)
    label_gold(session, world, run.id or 0, agree=True)
    probe_world(client, session, engine, settings, world)
    bundle = export_service.create_bundle(
        session,
        world.project,
        actor=world.engineer,
        can_override=False,
        rubric_version_id=world.version.id or 0,
        judge_config_id=world.judge.id or 0,
        run_id=run.id,
    )

    # The studio: rewards from the run's stored verdicts.
    config = reward_service.current_config(session, world.project.id or 0).model
    rows, missing = reward_service.compute_rewards(
        session, world.project, config, run.id or 0, world.rollouts
    )
    assert missing == 0 and len(rows) == len(world.rollouts)
    studio = [row.reward for row in rows]
    statuses = [row.outcome["judge_status"] for row in rows]
    # The data exercise every path: gated (malformed/prose), judged, and varied judge scores.
    assert "skipped" in statuses and statuses.count("ok") >= 6
    assert len({r for r, s in zip(studio, statuses, strict=True) if s == "ok"}) > 2
    with_reference = [r for r in world.rollouts if r.reference_answer is not None]
    assert with_reference and len(with_reference) < len(world.rollouts)
    # A reference as JSON text (what trainers pass) and as the stored object.
    references_text = [
        json.dumps(r.reference_answer) if r.reference_answer is not None else None
        for r in world.rollouts
    ]

    # The exported TRL function (async, as GRPOTrainer awaits it), calling the judge server.
    served_before = judge_server.requests
    module_file = export_service.target_file(bundle, "trl")
    module_path = tmp_path / module_file.filename
    module_path.write_bytes(module_file.data)
    module = _load(module_path, f"parity_{bundle.content_hash[:8]}")
    metrics: dict[str, float] = {}
    trl = asyncio.run(
        module.reward_func(
            prompts=[r.input_messages for r in world.rollouts],
            completions=[[{"role": "assistant", "content": r.response}] for r in world.rollouts],
            target_document=[r.target_document for r in world.rollouts],
            references=[r.reference_documents for r in world.rollouts],
            reference_answer=references_text,
            metadata=[r.metadata_ for r in world.rollouts],
            log_metric=metrics.__setitem__,
            log_extra=lambda column, values: None,
        )
    )
    assert judge_server.requests - served_before == statuses.count("ok")
    assert trl == studio
    assert metrics["rubric/judged_rate"] == statuses.count("ok") / len(statuses)

    # verl: compute_score through verl's loader, ground_truth the JSON text, prompt in extra_info.
    compute_score = _verl_loader(module_path, "compute_score")
    compute_score_async = _verl_loader(module_path, "compute_score_async")
    verl = []
    for rollout, reference in zip(world.rollouts, references_text, strict=True):
        extra_info = {
            "prompt": rollout.input_messages,
            "target_document": rollout.target_document,
            "references": rollout.reference_documents,
            "metadata": rollout.metadata_,
            "index": rollout.id,
        }
        result = compute_score(
            data_source="contracts",
            solution_str=rollout.response,
            ground_truth=reference,
            extra_info=extra_info,
        )
        verl.append(result["score"])
    assert verl == studio
    keys = [c["key"] for c in world.version.definition["criteria"]]
    assert {f"criterion.{k}" for k in keys} <= set(result)
    first = world.rollouts[0]
    async_result = asyncio.run(
        compute_score_async(
            data_source="contracts",
            solution_str=first.response,
            ground_truth=first.reference_answer,  # the object: same reward as its text
            extra_info={
                "prompt": first.input_messages,
                "target_document": first.target_document,
                "references": first.reference_documents,
                "metadata": first.metadata_,
            },
        )
    )
    assert async_result["score"] == studio[0]

    # OpenRLHF: reward_func(queries, prompts, labels); the label carries the row as JSON text.
    rlhf_file = export_service.target_file(bundle, "openrlhf")
    rlhf_path = tmp_path / rlhf_file.filename
    rlhf_path.write_bytes(rlhf_file.data)
    prompts = [
        f"<|im_start|>user\n{r.input_messages[-1]['content']}<|im_end|>\n" for r in world.rollouts
    ]
    queries = [p + r.response + "<|im_end|>" for p, r in zip(prompts, world.rollouts, strict=True)]
    labels = [
        json.dumps(
            {
                "messages": r.input_messages,
                "reference_answer": reference,
                "target_document": r.target_document,
                "references": r.reference_documents,
                "metadata": r.metadata_,
            }
        )
        for r, reference in zip(world.rollouts, references_text, strict=True)
    ]
    infos = _openrlhf_rewards(rlhf_path, queries, prompts, labels)
    assert [_as_float(info["rewards"]) for info in infos] == pytest.approx(studio, abs=1e-6)
    assert all(f"criterion.{keys[0]}" in info["extra_logs"] for info in infos)

    # The exported Lambda, unzipped alone; Bedrock replays the judge answers the studio got.
    verdicts = verdicts_by_rollout(session, run.id or 0)
    script = [
        {"text": verdicts[r.id or 0].raw_text}
        for r, status in zip(world.rollouts, statuses, strict=True)
        if status == "ok"
    ]
    options = TargetOptions(
        provider="bedrock", model_id="us.amazon.nova-2-lite-v1:0", region="us-east-1"
    )
    zip_file = export_service.target_file(bundle, "nova-lambda", options)
    with zipfile.ZipFile(io.BytesIO(zip_file.data)) as archive:
        assert "boto3" in archive.read("requirements.txt").decode()
    event = [
        {
            "id": r.external_id,
            "messages": [*r.input_messages, {"role": "assistant", "content": r.response}],
            # Bedrock RFT's shape: custom fields under metadata; the reference as an object.
            "metadata": {
                **r.metadata_,
                "target_document": r.target_document,
                "references": r.reference_documents,
                "reference_answer": r.reference_answer,
            },
        }
        for r in world.rollouts
    ]
    result = run_lambda(
        zip_file.data, tmp_path / "lambda", event, script, {"RUBRIC_JUDGE_CONCURRENCY": "1"}
    )
    output = NOVA_OUTPUT.validate_python(result["output"])
    assert [o.id for o in output] == [r.external_id for r in world.rollouts]
    assert [o.aggregate_reward_score for o in output] == studio
    # Per-criterion metrics equal the stored verdicts' criterion scores.
    for rollout, entry in zip(world.rollouts, result["output"], strict=True):
        verdict = verdicts[rollout.id or 0]
        metrics_by_name = {m["name"]: m["value"] for m in entry["metrics_list"]}
        for key, value in (verdict.scores.get("criteria") or {}).items():
            if "judge" in metrics_by_name:
                assert metrics_by_name[f"criterion.{key}"] == value
    assert json.loads(json.dumps(studio)) == studio


def test_where_the_document_is_holds_in_the_studio_and_every_package(
    session: Session, engine, judge_server: JudgeServer, tmp_path: Path
) -> None:
    """Rows with the contract inside the user message (no target_document field, as Nova and
    OpenAI chat rows have it): with the project's setting, grounding applies in the studio and
    the packages compute the same rewards (TRL, verl, the Lambda)."""
    from app.projects import service as project_service
    from app.projects.schemas import DocumentLocation

    world = build_world(session, judge_server.base_url, contracts=1)
    for rollout in world.rollouts:
        *before, last = rollout.input_messages
        content = f"{last['content']}\n<contract>\n{rollout.target_document}\n</contract>"
        rollout.input_messages = [*before, {**last, "content": content}]
        rollout.target_document = None
        session.add(rollout)
    session.commit()
    run = run_judge(session, engine, world)
    config = reward_service.current_config(session, world.project.id or 0).model

    def studio_rewards() -> tuple[list[float], list[bool]]:
        rows, missing = reward_service.compute_rewards(
            session, world.project, config, run.id or 0, world.rollouts
        )
        assert missing == 0
        applies = [r.outcome["components"]["grounding"]["applicable"] for r in rows]
        return [r.reward for r in rows], applies

    before, applies = studio_rewards()
    assert not any(applies)  # the default: the target_document field, which these rows lack
    project_service.update_project(
        session,
        world.project,
        actor=world.admin,
        expected_revision=world.project.revision,
        name=world.project.name,
        description=world.project.description,
        policy_system_prompt=world.project.policy_system_prompt,
        output_schema=world.project.output_schema,
        document_location=DocumentLocation(
            source="user_message", start_marker="<contract>", end_marker="</contract>"
        ),
    )
    studio, applies = studio_rewards()
    assert sum(applies) >= 2  # the judged (JSON) responses with excerpts
    assert studio != before  # grounding now counts

    label_gold(session, world, run.id or 0, agree=True)
    bundle = export_service.create_bundle(  # one contract is too few items for the gate
        session,
        world.project,
        actor=world.admin,
        can_override=True,
        rubric_version_id=world.version.id or 0,
        judge_config_id=world.judge.id or 0,
        run_id=run.id,
        override_reason="a parity test of four rollouts",
    )
    assert bundle.content["spec"]["project"]["document_location"]["start_marker"] == "<contract>"

    module_file = export_service.target_file(bundle, "trl")
    module_path = tmp_path / module_file.filename
    module_path.write_bytes(module_file.data)
    module = _load(module_path, f"parity_doc_{bundle.content_hash[:8]}")
    trl = asyncio.run(
        module.reward_func(
            prompts=[r.input_messages for r in world.rollouts],
            completions=[[{"role": "assistant", "content": r.response}] for r in world.rollouts],
            references=[r.reference_documents for r in world.rollouts],
            metadata=[r.metadata_ for r in world.rollouts],
            log_metric=lambda name, value: None,
            log_extra=lambda column, values: None,
        )
    )
    assert trl == studio

    compute_score = _verl_loader(module_path, "compute_score")
    verl = [
        compute_score(
            data_source="contracts",
            solution_str=r.response,
            ground_truth=None,
            extra_info={
                "prompt": r.input_messages,
                "references": r.reference_documents,
                "metadata": r.metadata_,
            },
        )["score"]
        for r in world.rollouts
    ]
    assert verl == studio

    verdicts = verdicts_by_rollout(session, run.id or 0)
    statuses = [
        reward_outcomes.outcome_for(
            config.as_dict(),
            r,
            verdicts.get(r.id or 0),
            world.project.output_schema,
            project_service.document_location_of(world.project),
        )["judge_status"]  # type: ignore[index]
        for r in world.rollouts
    ]
    script = [
        {"text": verdicts[r.id or 0].raw_text}
        for r, status in zip(world.rollouts, statuses, strict=True)
        if status == "ok"
    ]
    options = TargetOptions(
        provider="bedrock", model_id="us.amazon.nova-2-lite-v1:0", region="us-east-1"
    )
    zip_file = export_service.target_file(bundle, "nova-lambda", options)
    event = [
        {
            "id": r.external_id,
            "messages": [*r.input_messages, {"role": "assistant", "content": r.response}],
            "metadata": {**r.metadata_, "references": r.reference_documents},
        }
        for r in world.rollouts
    ]
    result = run_lambda(
        zip_file.data, tmp_path / "lambda", event, script, {"RUBRIC_JUDGE_CONCURRENCY": "1"}
    )
    output = NOVA_OUTPUT.validate_python(result["output"])
    assert [o.aggregate_reward_score for o in output] == studio
