"""Item coverage end to end: a judge that skips, repeats or invents comments gets no score from
what came back, in the studio (a real judge run; the review reading) and in the exported TRL
function (parity): repair, then the neutral reward."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from app.exports import service as export_service
from app.exports.models import ExportBundle
from app.labels import values as label_values
from app.llm.schema_instance import instance_for_prompt, item_list_field
from app.rewards import service as reward_service
from app.rubrics import service as rubric_service
from app.rubrics.scoring import response_item_count
from tests.integration.exports.world import World, build_world, run_judge, verdicts_by_rollout
from tests.support.judge_server import JudgeServer, _last_user

MUTATIONS = ("missing", "duplicate", "out_of_range")


def _mutated(kind: str):
    def responder(body: dict[str, Any]) -> str:
        schema = body["response_format"]["json_schema"]["schema"]
        answer = instance_for_prompt(schema, _last_user(body["messages"]))
        items = answer[item_list_field(schema) or "comments"]
        if items:
            if kind == "missing":
                del items[-1]
            elif kind == "duplicate":
                items.append(dict(items[0]))
            else:
                items[-1]["item_index"] = len(items)  # "Item 4" of three
        return json.dumps(answer)

    return responder


@pytest.mark.parametrize("kind", MUTATIONS)
def test_a_judge_that_does_not_cover_every_comment_earns_the_neutral_reward(
    session: Session, engine, kind: str, tmp_path: Path
) -> None:
    with JudgeServer(responder=_mutated(kind)) as server:
        world = build_world(session, server.base_url, contracts=1)
        run = run_judge(session, engine, world)
        # The run finishes; the uncovered answers are error verdicts, so it says so.
        assert run.status in ("with_errors", "failed")
        verdicts = verdicts_by_rollout(session, run.id or 0)
        config = reward_service.current_config(session, world.project.id or 0).model
        rows, _missing = reward_service.compute_rewards(
            session, world.project, config, run.id or 0, world.rollouts
        )
        judged = [r for r in world.rollouts if response_item_count(r.response, "comments")]
        assert judged
        for rollout in judged:
            verdict = verdicts[rollout.id or 0]
            # The repair request got the same kind of answer: invalid, neutral, never "ok".
            assert verdict.parse_status == "invalid", verdict.error
            assert verdict.normalized == pytest.approx(0.5)
        studio = {row.rollout_id: row.outcome for row in rows}
        for rollout in judged:
            outcome = studio[rollout.id or 0]
            if outcome["gated_by"] is None:
                assert outcome["judge_status"] == "error"
                assert outcome["reward"] == config.judge.neutral_reward
        # The review page's reading never names an item the response does not have.
        definition = rubric_service.version_definition(world.version)
        for rollout in judged:
            reading = label_values.read_verdict(
                definition,
                scores={},
                answer=verdicts[rollout.id or 0].answer,
                aggregate=None,
                normalized=None,
            )
            count = response_item_count(rollout.response, "comments")
            for texts in reading.criteria.values():
                for text in texts.justification:
                    if text.startswith("Item "):
                        assert int(text.split(":")[0].split()[1]) <= count

        # The exported TRL function, against the same judge: the same rewards.
        module = _trl_module(_bundle(session, world), tmp_path)
        trl = module.reward_func_sync(
            prompts=[r.input_messages for r in world.rollouts],
            completions=[[{"role": "assistant", "content": r.response}] for r in world.rollouts],
            target_document=[r.target_document for r in world.rollouts],
            references=[r.reference_documents for r in world.rollouts],
            reference_answer=[r.reference_answer for r in world.rollouts],
            metadata=[r.metadata_ for r in world.rollouts],
        )
        assert trl == [studio[r.id or 0]["reward"] for r in world.rollouts]


def _bundle(session: Session, world: World) -> ExportBundle:
    bundle = export_service.create_bundle(
        session,
        world.project,
        actor=world.admin,
        can_override=True,
        rubric_version_id=world.version.id or 0,
        judge_config_id=world.judge.id or 0,
        run_id=None,
        override_reason="coverage test: no gold labels here",
    )
    return bundle


def _trl_module(bundle: ExportBundle, tmp_path: Path) -> Any:
    module_file = export_service.target_file(bundle, "trl")
    path = tmp_path / module_file.filename
    path.write_bytes(module_file.data)
    spec = importlib.util.spec_from_file_location(f"cov_{bundle.content_hash[:8]}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
