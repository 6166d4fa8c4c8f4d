"""The trainer modules loaded the way their trainers load them: verl's own
`load_extern_object` (the verl wheel installed without dependencies) and OpenRLHF's
`SingleTurnAgentExecutor` (openrlhf installed without dependencies), then called."""

from __future__ import annotations

import asyncio
import inspect
import json
from pathlib import Path

from app.exports.targets.trl_verl import build_module
from tests.support.ecosystem import require, verl_load_extern_object
from tests.unit.exports.builders import BEDROCK_JUDGE, demo_sample_rollouts, legal_content

UNREACHABLE_JUDGE = BEDROCK_JUDGE | {
    "provider": "openai_compat",
    "model_id": "judge-test",
    "base_url": "http://127.0.0.1:9/v1",
    "region": None,
    "max_attempts": 1,
}


def test_verl_loads_and_calls_the_exported_compute_score(tmp_path: Path) -> None:
    load_extern_object = verl_load_extern_object()
    content = legal_content(judge=UNREACHABLE_JUDGE)
    path = tmp_path / "reward.py"
    path.write_text(build_module(content))
    compute_score = load_extern_object(str(path), "compute_score")
    compute_score_async = load_extern_object(str(path), "compute_score_async")
    assert inspect.iscoroutinefunction(compute_score_async)  # verl awaits it in its reward loop
    prose = next(r for r in demo_sample_rollouts() if r["metadata"]["response_defect"] == "prose")
    extra_info = {"prompt": prose["input"], "index": 0, "num_turns": None}
    result = compute_score(
        data_source="contracts",
        solution_str=prose["response"],
        ground_truth=json.dumps({"rules": ["R1"]}),
        extra_info=extra_info,
    )
    criteria = [c["key"] for c in content["spec"]["rubric"]["definition"]["criteria"]]
    assert result["score"] == 0.0 and result["gated"] == 1.0 and result["format"] == 0.0
    assert {f"criterion.{k}" for k in criteria} <= set(result)
    assert all(isinstance(v, float) for v in result.values())
    again = asyncio.run(
        compute_score_async(
            data_source="contracts",
            solution_str=prose["response"],
            ground_truth=None,
            extra_info=extra_info,
        )
    )
    assert again == result


def test_openrlhf_loads_and_calls_the_exported_reward_func(tmp_path: Path) -> None:
    torch = require("torch")
    agent = require("openrlhf.utils.agent")
    content = legal_content(judge=UNREACHABLE_JUDGE)
    path = tmp_path / "reward.py"
    path.write_text(build_module(content, flavour="openrlhf"))
    executor = agent.SingleTurnAgentExecutor(remote_rm_url=str(path))
    prose = next(r for r in demo_sample_rollouts() if r["metadata"]["response_defect"] == "prose")
    prompt = "<|im_start|>user\nReview the contract.<|im_end|>\n"
    [info] = asyncio.run(
        executor._fetch_rewards_via_func(
            [prompt + prose["response"] + "<|im_end|>"], [prompt], ["R1"]
        )
    )
    assert isinstance(info["rewards"], torch.Tensor) and info["rewards"].tolist() == [0.0]
    assert info["scores"].tolist() == [0.0]
    assert info["extra_logs"]["gated"].tolist() == [1.0]
    # What OpenRLHF's sample generator then does with the values.
    assert torch.tensor([info["rewards"]]).shape == (1,)
    assert {key: torch.tensor([v.flatten()[0].item()]) for key, v in info["extra_logs"].items()}
