"""Parity (the acceptance test): for the gold items of a demo-like project, the studio's own
reward (a real judge run against the local judge server, then the reward from stored verdicts),
the exported TRL function (calling the same judge server) and the exported Lambda handler
(unzipped alone, Bedrock answered by a Stubber with the same judge answers) are identical."""

from __future__ import annotations

import importlib.util
import io
import json
import zipfile
from pathlib import Path

import pytest
from sqlmodel import Session

from app.exports import service as export_service
from app.exports.targets import TargetOptions
from app.rewards import service as reward_service
from tests.integration.exports.world import build_world, label_gold, run_judge, verdicts_by_rollout
from tests.support.judge_server import JudgeServer
from tests.unit.exports.nova_models import NOVA_OUTPUT
from tests.unit.exports.package_env import run_lambda


@pytest.fixture
def judge_server():
    with JudgeServer() as server:
        yield server


def test_studio_lambda_and_trl_rewards_are_identical(
    session: Session, engine, judge_server: JudgeServer, tmp_path: Path
) -> None:
    world = build_world(session, judge_server.base_url)
    run = run_judge(session, engine, world)
    assert run.status == "completed" and run.items_done == len(world.rollouts)
    label_gold(session, world, run.id or 0, agree=True)
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

    # The exported TRL function, calling the same judge server.
    served_before = judge_server.requests
    module_file = export_service.target_file(bundle, "trl")
    path = tmp_path / module_file.filename
    path.write_bytes(module_file.data)
    spec = importlib.util.spec_from_file_location(f"parity_{bundle.content_hash[:8]}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    trl = module.reward_func(
        prompts=[r.input_messages for r in world.rollouts],
        completions=[[{"role": "assistant", "content": r.response}] for r in world.rollouts],
        target_document=[r.target_document for r in world.rollouts],
        references=[r.reference_documents for r in world.rollouts],
        reference_answer=[r.reference_answer for r in world.rollouts],
        metadata=[r.metadata_ for r in world.rollouts],
    )
    assert judge_server.requests - served_before == statuses.count("ok")
    assert trl == studio

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
            # Bedrock RFT's shape: custom fields under metadata.
            "metadata": {
                **r.metadata_,
                "target_document": r.target_document,
                "references": r.reference_documents,
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
        metrics = {m["name"]: m["value"] for m in entry["metrics_list"]}
        for key, value in (verdict.scores.get("criteria") or {}).items():
            if "judge" in metrics:
                assert metrics[f"criterion.{key}"] == value
    assert json.loads(json.dumps(studio)) == studio
