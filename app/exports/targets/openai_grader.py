"""Generate an OpenAI reinforcement fine-tuning grader (LEGACY: OpenAI is retiring graders).

Without deterministic components: one `score_model` grader. With them: a `multi` grader whose
python graders run the studio's own components.py (embedded verbatim) and whose
calculate_output reproduces the weighted sum and the gates. Language checks need langdetect,
which the grader image lacks, and a judge error cannot be given a neutral value there: both are
listed under "differences".
"""

from __future__ import annotations

import json
from typing import Any

from app.exports.targets.common import TargetOptions, runtime_bundle, runtime_sources
from app.rubrics.definition import RubricDefinition
from app.rubrics.prompting import PromptContext, render_prompt

IMAGE_TAG = "2025-05-08"
LEGACY_NOTICE = (
    "LEGACY: OpenAI is deprecating graders for evals and reinforcement fine-tuning; prefer the "
    "Lambda or trainer exports. Check OpenAI's retirement timeline before relying on this."
)
# Placeholders OpenAI fills per dataset row ({{item.*}}) and per sample ({{sample.*}}).
ITEM_FIELDS = ("prompt", "target_document", "references_text", "reference_answer")
_SCORE_INSTRUCTION = (
    "\n\nFinally, give the overall result as a number from 0 to 1: the aggregate score "
    "described above, rescaled so that the lowest possible score is 0 and the highest is 1."
)
_GRADE_SOURCE = """

CONFIG = json.loads({config!r})
OUTPUT_SCHEMA = json.loads({schema!r})


def grade(sample, item):
    results = evaluate_components(
        CONFIG,
        sample.get("output_text") or "",
        input_messages=[{{"role": "user", "content": str(item.get("prompt") or "")}}],
        target_document=item.get("target_document"),
        output_schema=OUTPUT_SCHEMA,
    )
    result = results.get({name!r})
    if result is None or not result.get("applicable", True):
        return {missing}
    return {value}
"""


def _placeholder_prompt(definition: RubricDefinition) -> tuple[str, str]:
    ctx = PromptContext(
        input_messages=[{"role": "user", "content": "{{item.prompt}}"}],
        target_document="{{item.target_document}}",
        references=[{"title": "References", "text": "{{item.references_text}}"}],
        response="{{sample.output_text}}",
        reference_answer="{{item.reference_answer}}",
    )
    rendered = render_prompt(definition, ctx)
    return rendered.system + _SCORE_INSTRUCTION, rendered.user


def score_model_grader(content: dict[str, Any], options: TargetOptions) -> dict[str, Any]:
    bundle = runtime_bundle(content, options)
    definition = RubricDefinition.model_validate(bundle["spec"]["rubric"]["definition"])
    system, user = _placeholder_prompt(definition)
    sampling: dict[str, Any] = {"seed": 1}
    if not options.grader_model.startswith(("o1", "o3", "o4")):
        sampling["temperature"] = 0  # reasoning models take no temperature
    return {
        "type": "score_model",
        "name": "rubric_judge",
        "model": options.grader_model,
        "input": [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ],
        "range": [0, 1],
        "sampling_params": sampling,
    }


def _python_grader(name: str, source: str) -> dict[str, Any]:
    return {"type": "python", "name": name, "image_tag": IMAGE_TAG, "source": source}


def build_grader(content: dict[str, Any], options: TargetOptions | None = None) -> dict[str, Any]:
    """{"legacy", "notice", "grader", "item_fields", "differences"}."""
    options = options or TargetOptions()
    bundle = runtime_bundle(content, options)
    reward = bundle["spec"]["reward"]
    schema = bundle["spec"]["project"].get("output_schema")
    judge_cfg = reward.get("judge") or {}
    differences = [
        "A judge error scores 0 here (OpenAI's rule), not the neutral reward "
        f"{judge_cfg.get('neutral_reward', 0.5)}.",
        "The judge answers OpenAI's score format, so per-criterion scores are not recomputed "
        "from its answer as the studio and the other exports do.",
    ]
    components_source = runtime_sources()["components"]
    config_text = json.dumps(reward, sort_keys=True)
    schema_text = json.dumps(schema)
    graders: dict[str, Any] = {}
    terms: list[tuple[str, float]] = []
    gates: list[tuple[str, float]] = []
    for name in ("format", "length", "language", "safety", "grounding"):
        settings = reward.get(name) or {}
        if not settings.get("enabled"):
            continue
        if name == "language":
            differences.append(
                "The language check is left out: the grader image has no langdetect."
            )
            continue
        weight = float(settings.get("weight", 0.0))
        if weight > 0:
            graders[name] = _python_grader(
                name,
                components_source
                + _GRADE_SOURCE.format(
                    config=config_text,
                    schema=schema_text,
                    name=name,
                    missing="None",
                    value='float(result["score"])',
                ),
            )
            terms.append((name, weight))
        if settings.get("gate"):
            gate_name = f"{name}_pass"
            graders[gate_name] = _python_grader(
                gate_name,
                components_source
                + _GRADE_SOURCE.format(
                    config=config_text,
                    schema=schema_text,
                    name=name,
                    missing="1.0",
                    value='1.0 if result["passed"] else 0.0',
                ),
            )
            gates.append((gate_name, float(settings.get("gate_reward", 0.0))))
    if any(name in graders for name, _ in terms):
        differences.append(
            "A component that does not apply to a sample counts as 0 in calculate_output "
            "(the studio leaves it out of the weighted mean)."
        )
    judge_grader = score_model_grader(content, options)
    if judge_cfg.get("enabled", True) and float(judge_cfg.get("weight", 1.0)) > 0:
        graders["judge"] = judge_grader
        terms.append(("judge", float(judge_cfg.get("weight", 1.0))))
    if not gates and terms == [("judge", float(judge_cfg.get("weight", 1.0)))]:
        grader: dict[str, Any] = judge_grader
    else:
        total = sum(weight for _, weight in terms) or 1.0
        expression = (
            "(" + " + ".join(f"{weight:g} * {name}" for name, weight in terms) + f") / {total:g}"
            if terms
            else "0"
        )
        # The first gate in order wins: wrap the later gates first.
        for gate_name, gate_reward in reversed(gates):
            expression = f"{gate_name} * ({expression}) + (1 - {gate_name}) * {gate_reward:g}"
        grader = {
            "type": "multi",
            "name": "rubric_reward",
            "graders": graders,
            "calculate_output": expression,
        }
    return {
        "legacy": True,
        "notice": LEGACY_NOTICE,
        "content_hash": bundle["content_hash"],
        "grader": grader,
        "item_fields": list(ITEM_FIELDS),
        "differences": differences,
    }
