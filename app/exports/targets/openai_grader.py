"""Generate an OpenAI reinforcement fine-tuning grader (LEGACY: OpenAI is retiring graders), and
the same grader set for Microsoft Foundry (Azure OpenAI RFT), which runs these grader types.

`grader` is what the OpenAI SDK's own types accept (`ReinforcementMethod.grader`): one
`score_model` grader whose prompt is the studio's judge prompt with ONE output instruction (the
overall score from 0 to 1, replacing the rubric's JSON-answer section, which score_model cannot
use). The SDK types a `multi` grader's `graders` as a single grader, so when the reward has
deterministic components they come as `multi_grader`: the map of graders (python graders running
the studio's own components.py, embedded verbatim, and the judge) with a calculate_output that
reproduces the weighted sum and the gates, in the form OpenAI's graders guide and Foundry's
RFT documentation show; send it as raw JSON. Language checks need langdetect, which the grader
image lacks, and a judge error cannot be given a neutral value there: both are listed under
"differences".
"""

from __future__ import annotations

import json
from typing import Any

from app.exports.targets.common import TargetOptions, runtime_bundle, runtime_sources
from app.rubrics.definition import RubricDefinition
from app.rubrics.output_schema import build_output_schema
from app.rubrics.prompting import PromptContext, render_prompt

IMAGE_TAG = "2025-05-08"
LEGACY_NOTICE = (
    "LEGACY: OpenAI is deprecating graders for evals and reinforcement fine-tuning; prefer the "
    "Lambda or trainer exports. Check OpenAI's retirement timeline before relying on this."
)
# Placeholders OpenAI fills per dataset row ({{item.*}}) and per sample ({{sample.*}}).
ITEM_FIELDS = ("prompt", "target_document", "references_text", "reference_answer")
_SCORE_INSTRUCTION = (
    "Evaluate the response against every criterion above, in order, then give as your result "
    "one number from 0 to 1: the overall score described above, rescaled so that the lowest "
    "possible score is 0 and the highest is 1."
)
PLATFORMS = {
    "openai": "OpenAI fine-tuning API: method.reinforcement.grader of a fine-tuning job.",
    "foundry": (
        "Microsoft Foundry (Azure OpenAI) reinforcement fine-tuning: the job's "
        "method.reinforcement.grader; the model is a Foundry deployment name or an RFT base "
        "model such as o4-mini-2025-04-16."
    ),
}
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
    schema_text = json.dumps(build_output_schema(definition), indent=2, ensure_ascii=False)
    return score_instruction_system(rendered.system, schema_text), rendered.user


def score_instruction_system(system: str, schema_text: str) -> str:
    """The judge's system prompt with its output section (answer as JSON matching the schema)
    replaced by score_model's one instruction, so the grader model is told one thing."""
    index = system.find(schema_text)
    if index < 0:
        return system.rstrip() + "\n\n## Output\n" + _SCORE_INSTRUCTION + "\n"
    heading = system.rfind("## Output", 0, index)
    start = heading if heading >= 0 else index
    return system[:start] + "## Output\n" + _SCORE_INSTRUCTION + system[index + len(schema_text) :]


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


def build_grader(
    content: dict[str, Any], options: TargetOptions | None = None, *, platform: str = "openai"
) -> dict[str, Any]:
    """{"legacy", "notice", "platform", "grader", "multi_grader", "item_fields",
    "differences"}."""
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
    multi: dict[str, Any] | None = None
    if not gates and terms == [("judge", float(judge_cfg.get("weight", 1.0)))]:
        pass
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
        multi = {
            "type": "multi",
            "name": "rubric_reward",
            "graders": graders,
            "calculate_output": expression,
        }
        differences.append(
            "`grader` (the judge alone) is what the OpenAI SDK's types accept; the reward's "
            "deterministic components and gates are only in `multi_grader`, whose map of graders "
            "the SDK's MultiGrader type rejects (send it as raw JSON)."
        )
    differences.append(
        "The item's reference_answer is inserted as the text it holds: give an object as the "
        "studio shows it (pretty-printed JSON), as app/rubrics/reference_answer.py renders it."
    )
    single: dict[str, Any] | None = judge_grader if "judge" in graders else None
    if single is None:
        differences.append("The reward has no judge: only `multi_grader` describes it.")
    return {
        "legacy": True,
        "notice": LEGACY_NOTICE,
        "platform": platform,
        "platform_note": PLATFORMS[platform],
        "content_hash": bundle["content_hash"],
        "grader": single,
        "multi_grader": multi,
        "item_fields": list(ITEM_FIELDS),
        "differences": differences,
    }
