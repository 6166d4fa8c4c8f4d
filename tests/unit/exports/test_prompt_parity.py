"""The exported runtime renders exactly the studio's judge prompt, for every sample shape."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

import pytest

from app.exports.package_runtime import prompt, rows
from app.judging.verdicts import rollout_context
from app.rubrics.builtin import get_builtin
from app.rubrics.definition import RubricDefinition
from app.rubrics.output_schema import build_output_schema
from app.rubrics.prompting import materialize_templates, render_prompt

CUSTOM_SYSTEM = """\
{% for c in criteria %}{{ c.position }}/{{ c.key }} [{{ c.min }}..{{ c.max }}] {{ c | json(None) }}
{% endfor %}{{ rubric | json }}
{{ output_schema }}
{% for ex in examples %}{{ ex.label | json(None) }}{% endfor %}
"""
CUSTOM_USER = """\
{{ prompt }}|{{ input_messages | length }}|{% for m in input_messages %}{{ m.role }}:{{ m.content }}
{% endfor %}
{{ target_document[:200] }}
{% for r in references %}{{ r.title }}={{ r.text[:50] }}{% endfor %}
{{ reference_answer }}|{{ metadata.get('contract_file', 'none') }}|{{ metadata | json(None) }}
{{ response }}
"""


def _definitions() -> list[RubricDefinition]:
    legal = materialize_templates(get_builtin("legal_contract_review"))
    generic = materialize_templates(get_builtin("generic_pass_fail"))
    custom = legal.model_copy(
        update={"system_template": CUSTOM_SYSTEM, "user_template": CUSTOM_USER}
    )
    return [legal, generic, custom]


def _rollout(record: dict[str, Any], reference_answer: Any) -> SimpleNamespace:
    return SimpleNamespace(
        input_messages=record["input"],
        target_document=record["target_document"],
        reference_documents=record["references"],
        response=record["response"],
        reference_answer=reference_answer,
        metadata_=record["metadata"],
    )


def _shape_a(record: dict[str, Any], reference_answer: Any) -> dict[str, Any]:
    return {
        "id": record["id"],
        "messages": [*record["input"], {"role": "assistant", "content": record["response"]}],
        "reference_answer": reference_answer,
        "target_document": record["target_document"],
        "references": record["references"],
        "metadata": record["metadata"],
    }


def _shape_b(record: dict[str, Any], reference_answer: Any) -> dict[str, Any]:
    # Bedrock RFT: custom fields under metadata, content as parts, Nova's assistant role.
    messages = [
        {"role": m["role"], "content": [{"type": "text", "text": m["content"]}]}
        for m in record["input"]
    ]
    messages.append({"role": "nova_assistant", "content": {"text": record["response"]}})
    return {
        "id": record["id"],
        "messages": messages,
        "metadata": {
            **record["metadata"],
            "reference_answer": reference_answer,
            "target_document": record["target_document"],
            "references": record["references"],
        },
    }


@pytest.mark.parametrize("definition", _definitions(), ids=["legal", "generic", "custom"])
@pytest.mark.parametrize("shape", [_shape_a, _shape_b], ids=["top-level", "metadata"])
def test_runtime_prompt_equals_the_studio_prompt(definition, shape, demo_rollouts) -> None:
    data = json.loads(json.dumps(definition.model_dump(mode="json")))
    schema_text = json.dumps(build_output_schema(definition), indent=2, ensure_ascii=False)
    for index, record in enumerate(demo_rollouts):
        reference_answer = [None, "x = 4", {"compliant": "No", "rules": ["R1", "R2"]}][index % 3]
        studio = render_prompt(definition, rollout_context(_rollout(record, reference_answer)))
        sample = rows.sample_from_row(shape(record, reference_answer))
        system, user = prompt.render(
            data, data["system_template"], data["user_template"], schema_text, sample
        )
        assert (system, user) == (studio.system, studio.user), record["id"]


def test_a_failing_template_fails_only_its_sample() -> None:
    data = materialize_templates(get_builtin("generic_pass_fail")).model_dump(mode="json")
    with pytest.raises(prompt.PromptError, match="user template"):
        prompt.render(data, "ok", "{{ metadata.missing.deeper }}", "{}", {"metadata": {}})
    with pytest.raises(prompt.PromptError, match="at most 4,000,000"):
        prompt.render(data, "{{ 'x' * 100000000 }}", "", "{}", {})


@pytest.mark.parametrize(
    "template",
    [
        "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
        "{{ 'a' | center(200000000) }}",
        "{{ '{:>50000000}'.format('x') }}",
        "{{ 'a' * 10**9 }}",
        "{{ range(10**9) }}",
    ],
)
def test_exported_packages_render_under_the_studios_budget(template: str) -> None:
    data = materialize_templates(get_builtin("generic_pass_fail")).model_dump(mode="json")
    started = time.process_time()
    with pytest.raises(prompt.PromptError, match="system template"):
        prompt.render(data, template, "", "{}", {})
    assert time.process_time() - started < 4.0


def test_sample_from_row_reads_both_documented_shapes() -> None:
    a = rows.sample_from_row(
        {
            "id": "1",
            "messages": [
                {"role": "user", "content": "Q"},
                {"role": "assistant", "content": "A"},
            ],
            "reference_answer": {"solution": "x"},
            "metadata": {"reference_answer": "ignored", "k": "v"},
        }
    )
    assert a["reference_answer"] == {"solution": "x"}
    assert a["metadata"] == {"k": "v"} and a["response"] == "A"
    b = rows.sample_from_row(
        {
            "id": "2",
            "messages": [{"role": "user", "content": "Q"}],
            "metadata": {"reference_answer": "r"},
        }
    )
    assert b["reference_answer"] == "r" and b["response"] == ""
    with pytest.raises(ValueError):
        rows.sample_from_row({"id": "3", "messages": "not a list"})


REFERENCE = {"compliant": "No", "rules": ["R1", "R2"], "note": "café"}


@pytest.mark.parametrize(
    "as_given",
    [
        REFERENCE,
        json.dumps(REFERENCE),  # verl's usual ground_truth: the JSON text
        json.dumps(REFERENCE, indent=4, ensure_ascii=True) + "\n",
        "  " + json.dumps(REFERENCE, separators=(",", ":")),
    ],
    ids=["object", "json-text", "pretty-ascii-json", "compact-json"],
)
def test_a_reference_as_json_text_renders_as_the_object_does(as_given, demo_rollouts) -> None:
    definition = materialize_templates(get_builtin("legal_contract_review"))
    record = demo_rollouts[0]
    expected = render_prompt(definition, rollout_context(_rollout(record, REFERENCE)))
    studio = render_prompt(definition, rollout_context(_rollout(record, as_given)))
    assert (studio.system, studio.user) == (expected.system, expected.user)
    data = json.loads(json.dumps(definition.model_dump(mode="json")))
    schema_text = json.dumps(build_output_schema(definition), indent=2, ensure_ascii=False)
    sample = rows.sample_from_row(_shape_a(record, as_given))
    system, user = prompt.render(
        data, data["system_template"], data["user_template"], schema_text, sample
    )
    assert (system, user) == (expected.system, expected.user)


def test_reference_answer_text() -> None:
    from app.rubrics.reference_answer import reference_answer_text as text

    assert text(None) == "" and text("x = 4") == "x = 4" and text('"x = 4"') == "x = 4"
    assert text("[not json") == "[not json" and text(42) == "42" == text("42")
    assert text(["a"]) == text('["a"]') == '[\n  "a"\n]'
