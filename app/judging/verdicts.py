"""The judge's call, pure: judge snapshots as provider settings and prices, prompts of a subject,
the run plan, reading and scoring a reply, and the verdict row stored for it.

No database or web here: the executor (`engine.py`), its storage steps (`storage.py`), the
estimate in `service.py` and the batch and import paths all share these functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.core.clock import utcnow
from app.judging import status as status_rules
from app.llm.base import JudgeCall, JudgeProvider
from app.llm.config import ProviderConfig
from app.llm.egress import EgressPolicy
from app.llm.json_extract import extract_json
from app.llm.providers import make_provider
from app.rubrics.definition import RubricDefinition, RubricMode
from app.rubrics.output_schema import answer_checker, validate_answer
from app.rubrics.prompting import (
    PreparedRubric,
    PromptContext,
    TemplateError,
    prepare_rubric,
    render_prompt,
)
from app.rubrics.scoring import (
    ScoringError,
    preference_winner,
    response_item_count,
    score_answer,
)

ACTIVE_STATUSES = status_rules.ACTIVE_STATUSES
FINAL_STATUSES = status_rules.FINAL_STATUSES
ERROR_PARSE_STATUSES = ("invalid", "error")
DEFAULT_NEUTRAL_SCORE = 0.5
MAX_RAW_TEXT = 100_000
MAX_ERROR_TEXT = 2_000
_MAX_COUNTER = 2**31 - 1  # the verdict's integer columns are 32-bit on PostgreSQL
_CANONICAL = {"A": "A", "B": "B", "tie": "tie"}
_FLIP = {"A": "B", "B": "A", "tie": "tie"}
_PAIR_SCORE = {"A": 1.0, "B": 0.0, "tie": 0.5}

ProviderFactory = Callable[[ProviderConfig], JudgeProvider]


# ---- judge configuration snapshots ------------------------------------------------------------


def provider_config(snapshot: dict[str, Any]) -> ProviderConfig:
    """The provider settings a run's judge snapshot (a JudgeConfig as a dict) describes."""
    params = snapshot.get("params") or {}
    provider = snapshot["provider"]
    return ProviderConfig(
        provider=provider,
        model_id=snapshot["model_id"],
        base_url=snapshot.get("base_url") if provider == "openai_compat" else None,
        api_key_env=snapshot.get("api_key_env") if provider == "openai_compat" else None,
        region=snapshot.get("region") if provider == "bedrock" else None,
        temperature=params.get("temperature", 0.0),
        top_p=params.get("top_p"),
        max_tokens=int(params.get("max_tokens") or 1024),
        concurrency=int(snapshot.get("concurrency") or 8),
        timeout_s=float(snapshot.get("timeout_s") or 60.0),
        max_attempts=int(snapshot.get("max_attempts") or 5),
        base_delay_s=float(params.get("base_delay_s", 1.0)),
        max_delay_s=float(params.get("max_delay_s", 30.0)),
        structured_output=params.get("structured_output") or "auto",
    )


def call_cost(snapshot: dict[str, Any], input_tokens: int, output_tokens: int) -> float:
    """Money spent on these tokens at the snapshot's prices per 1,000 tokens."""
    return input_tokens / 1000.0 * float(
        snapshot.get("price_input_per_1k") or 0.0
    ) + output_tokens / 1000.0 * float(snapshot.get("price_output_per_1k") or 0.0)


# ---- prompts ----------------------------------------------------------------------------------


def rollout_context(rollout: Any) -> PromptContext:
    """The prompt variables of one rollout (a Rollout row or a row with the same columns)."""
    return PromptContext(
        input_messages=list(rollout.input_messages or []),
        target_document=rollout.target_document,
        references=[_reference(i, r) for i, r in enumerate(rollout.reference_documents or [])],
        response=rollout.response or "",
        reference_answer=rollout.reference_answer,
        metadata=dict(rollout.metadata_ or {}),
    )


def pair_context(first: Any, second: Any) -> PromptContext:
    """Prompt variables for a pair shown as (first, second): response_a is what the judge sees
    first. The input and documents are the first rollout's (both answer the same input)."""
    ctx = rollout_context(first)
    ctx.response = ""
    ctx.response_a = first.response or ""
    ctx.response_b = second.response or ""
    return ctx


def _reference(index: int, ref: Any) -> dict[str, Any]:
    if isinstance(ref, dict):
        return {"title": str(ref.get("title") or f"Reference {index + 1}"), "text": ref.get("text")}
    return {"title": f"Reference {index + 1}", "text": str(ref)}


# ---- what a session needs to know about its run -----------------------------------------------


@dataclass
class RunPlan:
    """Everything needed to judge the items of one run, loaded once per session."""

    run_id: int
    kind: str
    status: str
    definition: RubricDefinition
    definition_dict: dict[str, Any]
    output_schema: dict[str, Any]
    snapshot: dict[str, Any]
    judge_name: str
    neutral_score: float
    _is_valid: Callable[[Any], bool] | None = field(default=None, repr=False)
    _prepared: PreparedRubric | None = field(default=None, repr=False)

    @property
    def prepared(self) -> PreparedRubric:
        # The rollout-independent prompt parts, built once per session rather than per item.
        if self._prepared is None:
            self._prepared = prepare_rubric(self.definition)
        return self._prepared

    @property
    def pairwise(self) -> bool:
        return self.definition.mode == RubricMode.preference

    def is_valid(self, answer: Any) -> bool:
        # Compiled once: checking hundreds of answers a second must not rebuild it each time.
        if self._is_valid is None:
            self._is_valid = answer_checker(self.output_schema)
        return self._is_valid(answer)

    def config(self) -> ProviderConfig:
        return provider_config(self.snapshot)


# ---- interpreting a reply ---------------------------------------------------------------------


@dataclass
class Interpretation:
    answer: Any
    scores: dict[str, Any]
    aggregate: float | None
    normalized: float | None
    winner: str | None


def interpret(
    plan: RunPlan, text: str, order: str = "", item_count: int | None = None
) -> Interpretation:
    """Parse, validate and score a judge reply. Raises ValueError with the reason it is unusable.
    `item_count`: the judged response's number of items (per-item rubrics must cover each)."""
    answer = extract_json(text)
    return score_parsed(plan, answer, order, item_count)


def score_parsed(
    plan: RunPlan, answer: Any, order: str = "", item_count: int | None = None
) -> Interpretation:
    """Validate and score an already parsed answer (ValueError when it does not fit the schema)."""
    if not plan.is_valid(answer):
        problems = validate_answer(plan.definition, answer)
        raise ValueError("does not match the answer schema: " + "; ".join(problems[:5]))
    if plan.pairwise:
        return pair_interpretation(answer, order)
    return rubric_interpretation(plan, answer, item_count)


def item_count_of(plan: RunPlan, response: str | None) -> int | None:
    """How many items the judge must score in `response` (None: the rubric is not per item)."""
    if plan.definition.aggregation != "per_item_mean":
        return None
    return response_item_count(response or "", plan.definition.item_field)


def rubric_interpretation(
    plan: RunPlan, answer: Any, item_count: int | None = None
) -> Interpretation:
    """Scores recomputed from the per-criterion answer (ValueError when it cannot be scored)."""
    try:
        scored = score_answer(plan.definition_dict, answer, item_count)
    except ScoringError as exc:
        raise ValueError(str(exc)) from None
    return Interpretation(
        answer=answer,
        scores={
            "criteria": scored["criteria"],
            "raw": scored["raw"],
            "hard_failed": scored["hard_failed"],
            "items": scored.get("items") or [],
        },
        aggregate=scored["aggregate"],
        normalized=scored["normalized"],
        winner=None,
    )


def pair_interpretation(answer: Any, order: str) -> Interpretation:
    """A preference answer (positional: about the order shown) in the pair's own A/B terms."""
    try:
        shown = preference_winner(answer)
    except ScoringError as exc:
        raise ValueError(str(exc)) from None
    winner = _FLIP[shown] if order == "BA" else _CANONICAL[shown]
    per_criterion = {}
    for key, entry in (answer.get("criteria") or {}).items():
        value = entry.get("winner") if isinstance(entry, dict) else None
        if value in _CANONICAL:
            per_criterion[key] = _FLIP[value] if order == "BA" else value
    return Interpretation(
        answer=answer,
        scores={"criteria": per_criterion, "shown_winner": shown},
        aggregate=_PAIR_SCORE[winner],
        normalized=_PAIR_SCORE[winner],
        winner=winner,
    )


# ---- one item ---------------------------------------------------------------------------------


@dataclass
class PreparedItem:
    """A claimed work item with its judge call rendered (or the reason it could not be)."""

    item_id: int
    rollout_id: int
    pair_id: int | None
    repeat: int
    order: str
    call: JudgeCall | None
    problem: str | None = None
    item_count: int | None = None  # items the judge must score (per-item rubrics)


def verdict_row(
    plan: RunPlan,
    item: PreparedItem,
    *,
    status: str,
    result: Interpretation | None = None,
    raw_text: str = "",
    error: str | None = None,
    latency_ms: int = 0,
    input_tokens: int = 0,
    output_tokens: int = 0,
    attempts: int = 0,
) -> dict[str, Any]:
    answer = None if result is None else result.answer
    scores = {} if result is None else result.scores
    if "\x00" in raw_text or "\\u0000" in raw_text:
        # A judge's reply is untrusted text, and PostgreSQL stores no NUL character: replace it
        # rather than let one verdict fail its whole batch again and again.
        raw_text, answer, scores = _without_nul((raw_text, answer, scores))
    return {
        "run_id": plan.run_id,
        "work_item_id": item.item_id,
        "rollout_id": item.rollout_id,
        "pair_id": item.pair_id,
        "repeat": item.repeat,
        "order_shown": item.order,
        "answer": answer,
        "scores": scores,
        "aggregate": None if result is None else result.aggregate,
        # A failed judgement still yields a score: the neutral one, so downstream sums work.
        "normalized": plan.neutral_score if result is None else result.normalized,
        "winner": None if result is None else result.winner,
        "raw_text": raw_text[:MAX_RAW_TEXT],
        "parse_status": status,
        "error": _without_nul(error[:MAX_ERROR_TEXT]) if error else None,
        # Counts reported by a judge server are untrusted: keep them within the columns' range.
        "latency_ms": _counter(latency_ms),
        "input_tokens": _counter(input_tokens),
        "output_tokens": _counter(output_tokens),
        "attempts": _counter(attempts),
        "judge_name": plan.judge_name[:200],
        "created_at": utcnow(),
    }


def _counter(value: int) -> int:
    return min(max(int(value), 0), _MAX_COUNTER)


def _without_nul(value: Any) -> Any:
    """`value` with every NUL character in its strings (keys too) replaced by U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_without_nul(v) for v in value)
    return value


def render_subject(
    plan: RunPlan,
    rollouts: dict[int, Any],
    pairs: dict[int, tuple[int, int]],
    rollout_id: int,
    pair_id: int | None,
    order: str,
) -> tuple[str, str] | str:
    """The (system, user) prompt of one subject (a rollout, or a pair shown in `order`), or the
    reason it cannot be rendered. Pure: the rollouts and pairs are passed in."""
    try:
        if pair_id is not None:
            if pair_id not in pairs:
                return f"pair {pair_id} no longer exists"
            a_id, b_id = pairs[pair_id]
            a, b = rollouts.get(a_id), rollouts.get(b_id)
            if a is None or b is None:
                return f"a rollout of pair {pair_id} no longer exists"
            ctx = pair_context(b, a) if order == "BA" else pair_context(a, b)
        else:
            rollout = rollouts.get(rollout_id)
            if rollout is None:
                return f"rollout {rollout_id} no longer exists"
            ctx = rollout_context(rollout)
        prompt = render_prompt(plan.definition, ctx, plan.prepared)
    except TemplateError as exc:
        return f"the rubric's prompt template failed: {exc}"
    return prompt.system, prompt.user


def default_provider(cfg: ProviderConfig, egress: EgressPolicy | None = None) -> JudgeProvider:
    """The provider for a judge configuration (tests inject others through provider_factory)."""
    return make_provider(cfg, egress=egress)
