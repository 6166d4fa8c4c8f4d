"""The reward of an exported bundle for one sample or a batch: deterministic components first,
then (unless a gate failed) the judge, combined exactly as the studio combines them.

Entry points for each training stack: `nova_batch` (Amazon Nova RFT Lambda events),
`trl_rewards` (TRL GRPOTrainer) and `verl_score` (verl compute_score). A sample that cannot be
read or judged gets the neutral reward; nothing here raises for one bad sample.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import components, composite, drift_recorder, json_extract, prompt, scoring
from .judge import Judge, JudgeError

log = logging.getLogger("rubric_reward")

ASSISTANT_ROLES = ("assistant", "nova_assistant")
# Keys of a training row the reward reads itself; the rest of `metadata` is the template's.
CONSUMED_KEYS = ("reference_answer", "target_document", "references")
MAX_ERROR_CHARS = 300


class BundleError(ValueError):
    """The bundle file is damaged or was edited after export."""


def canonical_json(value: Any) -> str:
    """Deterministic JSON text: sorted keys, no whitespace, UTF-8 kept (the studio's hash input)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def verify_bundle(bundle: dict[str, Any]) -> None:
    """Refuse a bundle whose spec does not match its content hash."""
    digest = hashlib.sha256(canonical_json(bundle.get("spec")).encode("utf-8")).hexdigest()
    if digest != bundle.get("content_hash"):
        raise BundleError(
            f"bundle content hash mismatch (expected {bundle.get('content_hash')}, got {digest}): "
            "the bundle was changed after export"
        )


def _lookup(row: dict[str, Any], key: str) -> Any:
    """A custom field at the top level of a training row first, then under `metadata`."""
    if row.get(key) is not None:
        return row[key]
    metadata = row.get("metadata")
    return metadata.get(key) if isinstance(metadata, dict) else None


def _template_metadata(row: dict[str, Any]) -> dict[str, Any]:
    metadata = row.get("metadata")
    if not isinstance(metadata, dict):
        return {}
    return {k: v for k, v in metadata.items() if k not in CONSUMED_KEYS}


def _references(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def split_messages(messages: Any) -> tuple[list[dict[str, Any]], str]:
    """(input messages, response): the response is the last assistant message's text."""
    if not isinstance(messages, list):
        raise ValueError("messages must be a list")
    normalized = []
    for message in messages:
        if not isinstance(message, dict):
            raise ValueError("each message must be an object")
        normalized.append(
            {
                "role": str(message.get("role") or "user"),
                "content": prompt.content_text(message.get("content")),
            }
        )
    for index in range(len(normalized) - 1, -1, -1):
        if normalized[index]["role"] in ASSISTANT_ROLES:
            return normalized[:index], normalized[index]["content"]
    return normalized, ""


def sample_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """A training row with its generated response (Nova RFT shape A or B) as a reward sample."""
    if not isinstance(row, dict):
        raise ValueError(f"a sample must be an object, got {type(row).__name__}")
    input_messages, response = split_messages(row.get("messages"))
    target = _lookup(row, "target_document")
    return {
        "input_messages": input_messages,
        "response": response,
        "reference_answer": _lookup(row, "reference_answer"),
        "target_document": target if isinstance(target, str) else None,
        "references": _references(_lookup(row, "references")),
        "metadata": _template_metadata(row),
    }


def _finite(value: float, fallback: float) -> float:
    return value if isinstance(value, int | float) and math.isfinite(value) else fallback


class RewardEngine:
    """Everything needed to score samples for one bundle; safe to share between threads."""

    def __init__(
        self,
        bundle: dict[str, Any],
        *,
        judge_overrides: dict[str, Any] | None = None,
        client_factory: Callable[[], Any] | None = None,
        http_client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        verify: bool = True,
    ) -> None:
        if verify:
            verify_bundle(bundle)
        self.bundle = bundle
        spec = bundle["spec"]
        self.spec = spec
        self.config: dict[str, Any] = spec["reward"]
        self.definition: dict[str, Any] = spec["rubric"]["definition"]
        self.output_schema: dict[str, Any] = spec["prompt"]["output_schema"]
        self.output_schema_text: str = bundle["runtime"]["output_schema_text"]
        self.project_schema: dict[str, Any] | None = spec["project"].get("output_schema")
        runtime_judge = (bundle.get("runtime") or {}).get("judge") or spec["judge"]
        self.judge_settings = dict(runtime_judge) | {
            k: v for k, v in (judge_overrides or {}).items() if v is not None
        }
        self._client_factory = client_factory
        self._http_client = http_client
        self._sleep = sleep
        self._judge: Judge | None = None
        self._judge_lock = threading.Lock()
        self._validator: Any = None
        self.drift = drift_recorder.from_bundle(bundle)  # drift samples out of training

    # ---- the judge ------------------------------------------------------------------------

    def judge(self) -> Judge:
        with self._judge_lock:
            if self._judge is None:
                self._judge = Judge(
                    self.judge_settings,
                    client_factory=self._client_factory,
                    http_client=self._http_client,
                    sleep=self._sleep,
                )
            return self._judge

    def _valid(self, answer: Any) -> bool:
        if self._validator is None:
            from jsonschema import Draft202012Validator

            self._validator = Draft202012Validator(self.output_schema)
        return bool(self._validator.is_valid(answer))

    def interpret(self, text: str) -> dict[str, Any]:
        """Score a judge reply as the studio does (parse, schema, recompute); ValueError if not."""
        answer = json_extract.extract_json(text)
        if not self._valid(answer):
            raise ValueError("does not match the answer schema")
        try:
            scored = scoring.score_answer(self.definition, answer)
        except scoring.ScoringError as exc:
            raise ValueError(str(exc)) from None
        return {
            "status": "ok",
            "normalized": scored["normalized"],
            "criteria": scored["criteria"],
            "raw_criteria": scored["raw"],
        }

    def call_judge(self, sample: dict[str, Any]) -> dict[str, Any]:
        """The judge's outcome for one sample: {"status": "ok", "normalized", "criteria"} or
        {"status": "error", "error"}; one repair request when the first reply is unusable."""
        try:
            system, user = prompt.render(
                self.definition,
                self.definition["system_template"],
                self.definition["user_template"],
                self.output_schema_text,
                sample,
            )
        except prompt.PromptError as exc:
            return {"status": "error", "error": str(exc)[:MAX_ERROR_CHARS]}
        judge = self.judge()
        try:
            reply, _attempts = judge.ask(system, user, self.output_schema)
        except JudgeError as exc:
            return {"status": "error", "error": f"{exc.code}: {exc.message}"[:MAX_ERROR_CHARS]}
        try:
            return self.interpret(reply) | {"raw": reply, "attempts": _attempts}
        except ValueError as exc:
            problem = str(exc)
        if not (self.config.get("judge") or {}).get("repair", True):
            return {"status": "error", "error": problem[:MAX_ERROR_CHARS]}
        repair = json_extract.repair_instructions(problem, self.output_schema)
        try:
            second, _ = judge.ask(system, repair, self.output_schema, ((user, reply),))
            return self.interpret(second)
        except JudgeError as exc:
            error = f"{problem}; the repair request failed: {exc.code}: {exc.message}"
        except ValueError as exc:
            error = f"{problem}; after one repair request: {exc}"
        return {"status": "error", "error": error[:MAX_ERROR_CHARS]}

    # ---- one sample ---------------------------------------------------------------------------

    def score(self, sample: dict[str, Any]) -> dict[str, Any]:
        """The composite outcome for one normalised sample (see composite.compute_reward)."""
        results = components.evaluate_components(
            self.config,
            sample.get("response") or "",
            input_messages=sample.get("input_messages") or [],
            target_document=sample.get("target_document"),
            output_schema=self.project_schema,
        )
        judge = None
        if composite.judge_needed(self.config, results):
            started = time.monotonic()
            judge = self.call_judge(sample)
            judge["latency_ms"] = round((time.monotonic() - started) * 1000)
        outcome = composite.compute_reward(self.config, results, judge)
        return outcome | {"sample": sample, "judge_call": judge}  # kept for drift records

    def neutral_outcome(self, error: str) -> dict[str, Any]:
        """The outcome of a sample that could not be read at all."""
        return {
            "reward": composite.neutral_reward(self.config),
            "gated_by": None,
            "judge_status": "error",
            "judge_score": None,
            "judge_error": error[:MAX_ERROR_CHARS],
            "contributions": {},
            "components": {},
            "criteria": {},
            "sample_error": error[:MAX_ERROR_CHARS],
        }

    def _safe_score(self, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        try:
            sample = build()
        except Exception as exc:  # a malformed sample never fails the batch
            return self.neutral_outcome(f"unreadable sample: {exc}")
        try:
            return self.score(sample)
        except Exception as exc:
            log.exception("scoring a sample failed")
            return self.neutral_outcome(f"internal error: {type(exc).__name__}: {exc}")

    def score_all(self, builders: list[Callable[[], dict[str, Any]]]) -> list[dict[str, Any]]:
        """Outcomes in input order; judge calls run in parallel up to the judge concurrency."""
        if not builders:
            return []
        workers = max(1, min(int(self.judge_settings.get("concurrency") or 8), len(builders)))
        if workers == 1:
            return [self._safe_score(build) for build in builders]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reward") as pool:
            return list(pool.map(self._safe_score, builders))

    # ---- training stacks ----------------------------------------------------------------------

    def nova_batch(self, event: Any) -> list[dict[str, Any]]:
        """Amazon Nova RFT: a bare list of samples in, [{id, aggregate_reward_score,
        metrics_list}] out, one per sample in the same order."""
        if isinstance(event, str | bytes):
            try:
                event = json.loads(event)
            except ValueError:
                event = []
        if isinstance(event, dict):
            if isinstance(event.get("body"), str):
                try:
                    event = json.loads(event["body"])
                except ValueError:
                    event = []
            elif isinstance(event.get("samples"), list):
                event = event["samples"]
            else:
                event = [event]
        rows = event if isinstance(event, list) else []
        outcomes = self.score_all([_row_builder(row) for row in rows])
        ids = [row.get("id") if isinstance(row, dict) else None for row in rows]
        self.drift.record(outcomes, source="nova-lambda", sample_ids=ids, wait=True)
        results = []
        for index, (row, outcome) in enumerate(zip(rows, outcomes, strict=True)):
            sample_id = row.get("id") if isinstance(row, dict) else None
            metrics = composite.metrics(self.config, outcome)
            if outcome.get("sample_error"):
                metrics.append({"name": "sample_error", "value": 1.0, "type": "Metric"})
            results.append(
                {
                    "id": sample_id if sample_id is not None else str(index),
                    "aggregate_reward_score": _finite(
                        outcome["reward"], composite.neutral_reward(self.config)
                    ),
                    "metrics_list": metrics,
                }
            )
        return results

    def trl_rewards(
        self, prompts: list[Any], completions: list[Any], **columns: Any
    ) -> list[float | None]:
        """TRL GRPOTrainer: one reward per completion; dataset columns arrive as lists."""

        def builder(i: int) -> Callable[[], dict[str, Any]]:
            def build() -> dict[str, Any]:
                prompt_value = prompts[i] if i < len(prompts) else ""
                if isinstance(prompt_value, list):
                    input_messages, _ = split_messages(prompt_value)
                else:
                    input_messages = [{"role": "user", "content": str(prompt_value)}]
                completion = completions[i]
                if isinstance(completion, list):
                    _, response = split_messages(completion)
                    if not response and completion:
                        response = prompt.content_text(completion[-1].get("content"))
                else:
                    response = str(completion)
                row = {key: _column(values, i) for key, values in columns.items()}
                target = _lookup(row, "target_document")
                return {
                    "input_messages": input_messages,
                    "response": response,
                    "reference_answer": _lookup(row, "reference_answer"),
                    "target_document": target if isinstance(target, str) else None,
                    "references": _references(_lookup(row, "references")),
                    "metadata": _template_metadata(row),
                }

            return build

        outcomes = self.score_all([builder(i) for i in range(len(completions))])
        step = drift_recorder.trainer_step(columns.get("trainer_state"))
        self.drift.record(outcomes, source="trl", step=step)
        neutral = composite.neutral_reward(self.config)
        return [_finite(outcome["reward"], neutral) for outcome in outcomes]

    def verl_score(
        self,
        data_source: Any,
        solution_str: Any,
        ground_truth: Any,
        extra_info: dict[str, Any] | None = None,
    ) -> dict[str, float]:
        """verl compute_score: {"score": reward, ...flags} for one decoded response."""
        info = extra_info if isinstance(extra_info, dict) else {}

        def build() -> dict[str, Any]:
            messages = info.get("prompt") or info.get("messages") or []
            if isinstance(messages, str):
                input_messages = [{"role": "user", "content": messages}]
            else:
                input_messages, _ = split_messages(list(messages))
            target = _lookup(info, "target_document")
            reference = (
                ground_truth if ground_truth is not None else _lookup(info, "reference_answer")
            )
            return {
                "input_messages": input_messages,
                "response": solution_str if isinstance(solution_str, str) else "",
                "reference_answer": reference,
                "target_document": target if isinstance(target, str) else None,
                "references": _references(_lookup(info, "references")),
                "metadata": _template_metadata(info),
            }

        outcome = self._safe_score(build)
        self.drift.record([outcome], source="verl", step=drift_recorder.trainer_step(info))
        neutral = composite.neutral_reward(self.config)
        return {
            "score": _finite(outcome["reward"], neutral),
            "gated": 0.0 if outcome.get("gated_by") is None else 1.0,
            "judge_error": 1.0 if outcome.get("judge_status") == "error" else 0.0,
        }


ENV_OVERRIDES = {
    "RUBRIC_JUDGE_PROVIDER": ("provider", str),
    "RUBRIC_JUDGE_MODEL_ID": ("model_id", str),
    "RUBRIC_JUDGE_BASE_URL": ("base_url", str),
    "RUBRIC_JUDGE_API_KEY_ENV": ("api_key_env", str),
    "RUBRIC_JUDGE_REGION": ("region", str),
    "RUBRIC_JUDGE_CONCURRENCY": ("concurrency", int),
    "RUBRIC_JUDGE_TIMEOUT_S": ("timeout_s", float),
    "RUBRIC_JUDGE_MAX_ATTEMPTS": ("max_attempts", int),
}


def env_overrides(environ: dict[str, str] | Any) -> dict[str, Any]:
    """Judge settings overridden by RUBRIC_JUDGE_* environment variables (deploy-time knobs)."""
    overrides: dict[str, Any] = {}
    for name, (key, kind) in ENV_OVERRIDES.items():
        value = environ.get(name)
        if value not in (None, ""):
            overrides[key] = kind(value)
    return overrides


def _row_builder(row: Any) -> Callable[[], dict[str, Any]]:
    return lambda: sample_from_row(row)


def _column(values: Any, index: int) -> Any:
    if isinstance(values, list | tuple):
        return values[index] if index < len(values) else None
    return None
