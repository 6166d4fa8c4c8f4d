"""The reward of an exported bundle for one sample or a batch: deterministic components first,
then (unless a gate failed) the judge, combined exactly as the studio combines them.

Entry points for each training stack: `nova_batch` (Amazon Nova RFT Lambda events),
`trl_rewards` / `trl_rewards_async` (TRL GRPOTrainer), `verl_score` / `verl_score_async` (verl
compute_score) and `openrlhf_rewards` (OpenRLHF's reward_func). A sample that cannot be read or
judged gets the neutral reward; nothing here raises for one bad sample.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import components, composite, drift_recorder, json_extract, prompt, scoring
from .judge import Judge, JudgeError
from .rows import (
    build_sample,
    column_at,
    finite,
    justification_text,
    label_row,
    lookup_field,
    messages_of,
    row_builder,
    split_messages,
    strip_end_markers,
)

log = logging.getLogger("rubric_reward")

MAX_ERROR_CHARS = 300
# Judge settings that change what the judge answers: fixed by the hashed bundle, never overridden
# at run time (where the server is, credentials, concurrency and timeouts may be).
REWARD_SETTINGS = (
    "provider",
    "model_id",
    "region",
    "temperature",
    "top_p",
    "max_tokens",
    "structured_output",
)


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
        self.document_location: dict[str, Any] | None = spec["project"].get("document_location")
        runtime_judge = (bundle.get("runtime") or {}).get("judge") or spec["judge"]
        overrides = {k: v for k, v in (judge_overrides or {}).items() if v is not None}
        for key in REWARD_SETTINGS:
            if key in overrides and overrides[key] != runtime_judge.get(key):
                raise BundleError(
                    f"judge setting {key}={overrides[key]!r} would change the reward of this "
                    f"bundle (it was exported with {runtime_judge.get(key)!r}): export again "
                    "with that setting so the content hash covers it"
                )
        self.judge_settings = dict(runtime_judge) | overrides
        self._client_factory = client_factory
        self._http_client = http_client
        self._sleep = sleep
        self._judge: Judge | None = None
        self._judge_lock = threading.Lock()
        self._validator: Any = None
        self._pool: ThreadPoolExecutor | None = None
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

    def item_count(self, response: str | None) -> int | None:
        """How many items the judge must score in `response` (None: not a per-item rubric)."""
        if self.definition.get("aggregation") != "per_item_mean":
            return None
        return scoring.response_item_count(response or "", self.definition.get("item_field"))

    def interpret(self, text: str, item_count: int | None = None) -> dict[str, Any]:
        """Score a judge reply as the studio does (parse, schema, recompute, item coverage);
        ValueError if not."""
        answer = json_extract.extract_json(text)
        if not self._valid(answer):
            raise ValueError("does not match the answer schema")
        try:
            scored = scoring.score_answer(self.definition, answer, item_count)
        except scoring.ScoringError as exc:
            raise ValueError(str(exc)) from None
        return {
            "status": "ok",
            "normalized": scored["normalized"],
            "criteria": scored["criteria"],
            "justification": justification_text(answer),
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
        items = self.item_count(sample.get("response"))
        try:
            reply, _attempts = judge.ask(system, user, self.output_schema)
        except JudgeError as exc:
            return {"status": "error", "error": f"{exc.code}: {exc.message}"[:MAX_ERROR_CHARS]}
        try:
            return self.interpret(reply, items) | {"raw": reply, "attempts": _attempts}
        except ValueError as exc:
            problem = str(exc)
        if not (self.config.get("judge") or {}).get("repair", True):
            return {"status": "error", "error": problem[:MAX_ERROR_CHARS]}
        repair = json_extract.repair_instructions(problem, self.output_schema)
        try:
            second, _ = judge.ask(system, repair, self.output_schema, ((user, reply),))
            return self.interpret(second, items)
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
            target_document=sample.get("grounding_document", sample.get("target_document")),
            output_schema=self.project_schema,
        )
        judge = None
        if composite.judge_needed(self.config, results):
            started = time.monotonic()
            judge = self.call_judge(sample)
            judge["latency_ms"] = round((time.monotonic() - started) * 1000)
        outcome = composite.compute_reward(self.config, results, judge)
        outcome["justification"] = (judge or {}).get("justification") or ""
        return outcome | {"sample": sample, "judge_call": judge}  # kept for drift records

    def detail_keys(self) -> list[str]:
        """The per-sample values reported besides the reward, the same keys for every sample:
        each enabled component, the judge, each criterion, and the gated / judge_error flags."""
        keys = [
            name
            for name in components.COMPONENT_ORDER
            if (self.config.get(name) or {}).get("enabled")
        ]
        keys.append("judge")
        keys += [f"criterion.{c['key']}" for c in self.definition.get("criteria") or []]
        return [*keys, "judged", "gated", "judge_error"]

    def details(self, outcome: dict[str, Any]) -> dict[str, float]:
        """{"score": reward, key: value for detail_keys()}. A value that does not exist for this
        sample (a component that does not apply, the judge not asked or failing) is 0.0:
        divide a criterion's mean by the mean of `judged` for its mean over judged samples."""
        neutral = composite.neutral_reward(self.config)
        values: dict[str, float] = {"score": finite(outcome["reward"], neutral)}
        judged = outcome.get("judge_status") == "ok"
        component_results = outcome.get("components") or {}
        criteria = outcome.get("criteria") or {}
        for key in self.detail_keys():
            if key == "judge":
                value = outcome.get("judge_score") if judged else None
            elif key.startswith("criterion."):
                value = criteria.get(key.removeprefix("criterion.")) if judged else None
            elif key == "judged":
                value = 1.0 if judged else 0.0
            elif key == "gated":
                value = 0.0 if outcome.get("gated_by") is None else 1.0
            elif key == "judge_error":
                value = 1.0 if outcome.get("judge_status") == "error" else 0.0
            else:
                result = component_results.get(key)
                applies = result is not None and result.get("applicable", True)
                value = result.get("score") if applies and result is not None else None
            values[key] = finite(float(value), 0.0) if isinstance(value, int | float) else 0.0
        return values

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

    def _async_pool(self) -> ThreadPoolExecutor:
        with self._judge_lock:
            if self._pool is None:
                workers = max(1, int(self.judge_settings.get("concurrency") or 8))
                self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reward")
            return self._pool

    async def score_all_async(
        self, builders: list[Callable[[], dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        """score_all for an event loop: the samples' judge calls run concurrently (up to the
        judge concurrency) while the loop stays free for the trainer's other work."""
        loop = asyncio.get_running_loop()
        pool = self._async_pool()
        return list(
            await asyncio.gather(
                *(loop.run_in_executor(pool, self._safe_score, build) for build in builders)
            )
        )

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
        outcomes = self.score_all([row_builder(row, self.document_location) for row in rows])
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
                    "aggregate_reward_score": finite(
                        outcome["reward"], composite.neutral_reward(self.config)
                    ),
                    "metrics_list": metrics,
                }
            )
        return results

    def _trl_builders(
        self, prompts: list[Any], completions: list[Any], columns: dict[str, Any]
    ) -> list[Callable[[], dict[str, Any]]]:
        def builder(i: int) -> Callable[[], dict[str, Any]]:
            def build() -> dict[str, Any]:
                input_messages = messages_of(prompts[i] if i < len(prompts) else "")
                completion = completions[i]
                if isinstance(completion, list):
                    _, response = split_messages(completion)
                    if not response and completion:
                        response = prompt.content_text(completion[-1].get("content"))
                else:
                    response = str(completion)
                row = {key: column_at(values, i) for key, values in columns.items()}
                return build_sample(input_messages, response, row, self.document_location)

            return build

        return [builder(i) for i in range(len(completions))]

    def trl_log(self, outcomes: list[dict[str, Any]], columns: dict[str, Any]) -> None:
        """Report to TRL through the callbacks GRPOTrainer passes: the batch mean of each
        component and criterion (over the samples where it exists) with `log_metric`, and each
        sample's judge justification and gate with `log_extra`."""
        log_metric = columns.get("log_metric")
        log_extra = columns.get("log_extra")
        if callable(log_metric) and outcomes:
            rows = [self.details(outcome) for outcome in outcomes]
            judged = [row for row in rows if row["judged"]]
            for key in self.detail_keys():
                if key in ("judged", "gated", "judge_error"):
                    log_metric(f"rubric/{key}_rate", sum(row[key] for row in rows) / len(rows))
                elif key == "judge" or key.startswith("criterion."):
                    if judged:
                        log_metric(f"rubric/{key}", sum(row[key] for row in judged) / len(judged))
                else:
                    applies = [
                        float((o.get("components") or {})[key]["score"])
                        for o in outcomes
                        if key in (o.get("components") or {})
                        and (o.get("components") or {})[key].get("applicable", True)
                    ]
                    if applies:
                        log_metric(f"rubric/{key}", sum(applies) / len(applies))
        if callable(log_extra):
            log_extra("rubric_justification", [o.get("justification") or "" for o in outcomes])
            log_extra("rubric_gated_by", [o.get("gated_by") or "" for o in outcomes])

    def trl_rewards(
        self, prompts: list[Any], completions: list[Any], **columns: Any
    ) -> list[float | None]:
        """TRL GRPOTrainer: one reward per completion; dataset columns arrive as lists."""
        outcomes = self.score_all(self._trl_builders(prompts, completions, columns))
        self.trl_log(outcomes, columns)
        step = drift_recorder.trainer_step(columns.get("trainer_state"))
        self.drift.record(outcomes, source="trl", step=step)
        neutral = composite.neutral_reward(self.config)
        return [finite(outcome["reward"], neutral) for outcome in outcomes]

    async def trl_rewards_async(
        self, prompts: list[Any], completions: list[Any], **columns: Any
    ) -> list[float | None]:
        """trl_rewards with the batch's judge calls run concurrently from the trainer's loop."""
        outcomes = await self.score_all_async(self._trl_builders(prompts, completions, columns))
        self.trl_log(outcomes, columns)
        step = drift_recorder.trainer_step(columns.get("trainer_state"))
        self.drift.record(outcomes, source="trl", step=step)
        neutral = composite.neutral_reward(self.config)
        return [finite(outcome["reward"], neutral) for outcome in outcomes]

    def _verl_builder(
        self, solution_str: Any, ground_truth: Any, extra_info: Any, kwargs: dict[str, Any]
    ) -> Callable[[], dict[str, Any]]:
        info = dict(extra_info) if isinstance(extra_info, dict) else {}

        def build() -> dict[str, Any]:
            # The prompt as verl's row carries it: a keyword (a custom reward manager or
            # reward_kwargs), else extra_info's prompt / raw_prompt / messages / question.
            messages: Any = None
            for source in (kwargs, info):
                for key in ("prompt", "raw_prompt", "messages", "prompt_str", "question"):
                    if source.get(key) is not None:
                        messages = source[key]
                        break
                if messages is not None:
                    break
            reference = (
                ground_truth if ground_truth is not None else lookup_field(info, "reference_answer")
            )
            row = info | {"reference_answer": reference}
            response = solution_str if isinstance(solution_str, str) else ""
            return build_sample(messages_of(messages), response, row, self.document_location)

        return build

    def verl_score(
        self,
        data_source: Any,
        solution_str: Any,
        ground_truth: Any,
        extra_info: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, float]:
        """verl compute_score, the dict form: {"score": reward, one key per component and
        criterion, "judge", "judged", "gated", "judge_error"} (verl logs every key)."""
        outcome = self._safe_score(
            self._verl_builder(solution_str, ground_truth, extra_info, kwargs)
        )
        self.drift.record([outcome], source="verl", step=drift_recorder.trainer_step(extra_info))
        return self.details(outcome)

    async def verl_score_async(
        self,
        data_source: Any,
        solution_str: Any,
        ground_truth: Any,
        extra_info: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, float]:
        """verl_score for verl's async reward loop (judge call off the event loop)."""
        build = self._verl_builder(solution_str, ground_truth, extra_info, kwargs)
        [outcome] = await self.score_all_async([build])
        self.drift.record([outcome], source="verl", step=drift_recorder.trainer_step(extra_info))
        return self.details(outcome)

    def openrlhf_rewards(
        self, queries: list[Any], prompts: list[Any], labels: list[Any]
    ) -> dict[str, Any]:
        """OpenRLHF reward_func(queries, prompts, labels): {"rewards", "scores", "extra_logs"}
        as lists (one value per query; extra_logs: one list per detail key).

        `queries` are prompt + response as decoded text; `prompts` the prompt text; a label is
        the reference answer, or a training row (an object, or its JSON text, with any of
        reference_answer, messages, target_document, references, metadata)."""

        def builder(i: int) -> Callable[[], dict[str, Any]]:
            def build() -> dict[str, Any]:
                query = str(queries[i])
                prompt_text = str(prompts[i]) if i < len(prompts) and prompts[i] is not None else ""
                response = query[len(prompt_text) :] if query.startswith(prompt_text) else query
                row = label_row(labels[i] if i < len(labels) else None)
                messages = (
                    row.get("messages") if row.get("messages") is not None else row.get("prompt")
                )
                input_messages = messages_of(messages if messages is not None else prompt_text)
                return build_sample(
                    input_messages, strip_end_markers(response), row, self.document_location
                )

            return build

        outcomes = self.score_all([builder(i) for i in range(len(queries))])
        rows = [self.details(outcome) for outcome in outcomes]
        return {
            "rewards": [row["score"] for row in rows],
            "scores": [row["score"] for row in rows],
            "extra_logs": {key: [row[key] for row in rows] for key in self.detail_keys()},
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
