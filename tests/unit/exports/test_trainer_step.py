"""The exported TRL reward function driving a real GRPOTrainer step on CPU: a tiny randomly
initialised Llama and a tokenizer built here (no hub downloads), the judge answered over HTTP
by the local judge server. Needs torch, transformers and trl (scripts/install_trainers.sh)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import pytest

from app.exports.targets.trl_verl import build_module
from app.rewards.config import RewardConfigModel
from tests.support.ecosystem import require
from tests.support.judge_server import JudgeServer
from tests.unit.exports.builders import BEDROCK_JUDGE, demo_sample_rollouts, legal_content

# The judge is asked about every completion: no deterministic gate stops random text first.
JUDGE_ONLY = {
    "format": {"enabled": False},
    "length": {"enabled": False},
    "grounding": {"enabled": False},
}


def _tokenizer(texts: list[str]) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(
        vocab_size=500, special_tokens=["<pad>", "<unk>", "<s>", "</s>"]
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
    )


def _module(path: Path, base_url: str) -> Any:
    judge = BEDROCK_JUDGE | {
        "provider": "openai_compat",
        "model_id": "judge-test",
        "base_url": base_url,
        "region": None,
        "concurrency": 4,
    }
    reward = RewardConfigModel.model_validate(JUDGE_ONLY).as_dict()
    path.write_text(build_module(legal_content(judge=judge, reward=reward)))
    spec = importlib.util.spec_from_file_location("trainer_step_reward", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_grpo_trainer_step_runs_with_the_exported_reward(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may come from the hub
    torch = require("torch")
    require("transformers")
    trl = require("trl")
    from datasets import Dataset
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    records = demo_sample_rollouts()[:4]
    prompts = [r["input"][-1]["content"][:200] for r in records]
    tokenizer = _tokenizer(prompts + [r["response"] for r in records])
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    dataset = Dataset.from_list(
        [
            {
                "prompt": prompt,
                "target_document": r["target_document"],
                "reference_answer": json.dumps({"rules": ["R1"]}),
                "metadata": json.dumps(r["metadata"]),
            }
            for prompt, r in zip(prompts, records, strict=True)
        ]
    )
    args = trl.GRPOConfig(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=8,
        max_steps=1,
        logging_steps=1,
        learning_rate=1e-3,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        seed=0,
    )
    with JudgeServer() as server:
        module = _module(tmp_path / "reward_module.py", server.base_url)
        assert trl.trainer.utils.is_async_callable(module.reward_func)
        trainer = trl.GRPOTrainer(
            model=model,
            reward_funcs=[module.reward_func],
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
        )
        trainer.train()
        served = server.requests
    assert trainer.state.global_step == 1
    assert served >= 4  # one judge call per completion of the batch, over HTTP
    logged: dict[str, Any] = {}
    for entry in trainer.state.log_history:
        logged.update(entry)
    # Each criterion and the judge reported through log_metric, averaged by the trainer.
    assert "rubric/judge" in logged and "rubric/judged_rate" in logged
    assert any(key.startswith("rubric/criterion.") for key in logged)
    assert any(key.startswith("rewards/reward_func") for key in logged)


def test_the_async_reward_runs_the_batch_judge_calls_concurrently(tmp_path: Path) -> None:
    prompts = ["Review the contract."] * 6
    completions = ["The contract is fine."] * 6
    with JudgeServer(latency_s=0.3) as server:
        module = _module(tmp_path / "reward_module.py", server.base_url)
        started = time.perf_counter()
        rewards = asyncio.run(module.reward_func(prompts=prompts, completions=completions))
        elapsed = time.perf_counter() - started
        assert server.requests == 6
    assert len(rewards) == 6
    assert elapsed < 6 * 0.3  # at concurrency 4, six 0.3 s calls take about two rounds
