"""Tests for judge prompt rendering: sandbox, error messages, defaults and validation."""

import pickle
import re
import time

import pytest

from app.rubrics.builtin import get_builtin
from app.rubrics.definition import Criterion, FewShotExample, Level, RubricDefinition
from app.rubrics.prompt_defaults import default_templates
from app.rubrics.prompting import (
    SAMPLE_CONTEXT,
    TEMPLATE_VARIABLES,
    PromptContext,
    TemplateError,
    effective_templates,
    estimate_tokens,
    materialize_templates,
    render_prompt,
    validate_templates,
)


def rubric(system: str = "", user: str = "", **extra: object) -> RubricDefinition:
    levels = [Level(value=v, description=f"level {v} text") for v in (1, 2, 3)]
    return RubricDefinition.model_validate(
        {
            "title": "Helpfulness",
            "task_description": "Judge the helpfulness of answers.",
            "criteria": [
                Criterion(key="Correct", name="Correctness", description="Facts are right."),
                Criterion(
                    key="Depth",
                    name="Depth",
                    description="Goes deep.",
                    type="scale",
                    levels=levels,
                    hard_fail=True,
                ),
            ],
            "edge_case_rules": ["If the response is empty, every criterion fails."],
            "desired_behaviours": ["Cites sources."],
            "discouraged_behaviours": ["Flattery."],
            "system_template": system,
            "user_template": user,
        }
        | extra
    )


CTX = PromptContext(
    input_messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": "An answer"},
        {"role": "user", "content": "What is the capital of France?"},
    ],
    target_document="DOC TEXT",
    references=[{"title": "Atlas", "text": "Paris is the capital."}],
    response="Paris.",
    reference_answer={"answer": "Paris"},
    metadata={"lang": "en"},
)


def render_user(template: str, ctx: PromptContext = CTX, **extra: object) -> str:
    return render_prompt(rubric(system="sys", user=template, **extra), ctx).user


def error_for(template: str, part: str = "user") -> TemplateError:
    defn = rubric(**{part: template})
    with pytest.raises(TemplateError) as exc:
        render_prompt(defn, CTX)
    return exc.value


def test_variables_are_exposed() -> None:
    text = render_user(
        "{{ prompt }}|{{ target_document }}|{{ references[0].title }}|{{ response }}|"
        "{{ metadata.lang }}|{{ criteria[1].key }}:{{ criteria[1].min }}-{{ criteria[1].max }}|"
        "{{ criteria[1].position }}|{{ rubric.title }}|{{ edge_case_rules | length }}|"
        "{{ input_messages | length }}"
    )
    assert text == (
        "What is the capital of France?|DOC TEXT|Atlas|Paris.|en|Depth:1-3|2|Helpfulness|1|4"
    )


def test_reference_answer_json_is_pretty_text_and_output_schema_is_json() -> None:
    assert render_user("{{ reference_answer }}") == '{\n  "answer": "Paris"\n}'
    assert render_user("{{ output_schema }}").startswith('{\n  "$schema"')


def test_no_html_escaping() -> None:
    ctx = PromptContext(response="<b>Tom & Jerry's</b>")
    assert render_user("{{ response }}", ctx) == "<b>Tom & Jerry's</b>"


def test_json_filter_is_not_html_escaped() -> None:
    assert render_user("{{ {'a': '<x>'} | json(None) }}") == '{"a": "<x>"}'


def test_every_documented_variable_is_provided() -> None:
    template = "".join(f"{{{{ {name} is defined }}}}" for name in TEMPLATE_VARIABLES)
    assert render_user(template) == "True" * len(TEMPLATE_VARIABLES)


@pytest.mark.parametrize(
    ("template", "attribute"),
    [
        ("{{ ''.__class__.__mro__ }}", "__class__"),
        ("{{ cycler.__init__.__globals__ }}", "__init__"),
        ("{{ response.__class__ }}", "__class__"),
        ("{{ references.append(1) }}", "append"),
        ("{{ '{0.__class__}'.format(response) }}", "__class__"),
        ("{{ response | attr('__class__') }}", "__class__"),
    ],
)
def test_sandbox_blocks_internals_with_a_clear_message(template: str, attribute: str) -> None:
    error = error_for("line one\n" + template)
    assert error.part == "user"
    assert error.line == 2
    assert f"'{attribute}'" in error.message
    assert "is not allowed in templates" in error.message


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ 'x' * 10000000 }}", "templates may produce at most 4,000,000"),
        ("{{ 7 ** 1000000 }}", "not allowed in templates"),
        (
            "{% for i in range(10000) %}{% for j in range(10000) %}{{ '' }}"
            "{% endfor %}{% endfor %}",
            "limited to 1,000,000 loop iterations|must render within 2 s",
        ),
        ("{{ 'a'|center(200000000) }}", "200,000,000 characters"),
        ("{{ 'a'.center(200000000) }}", "200,000,000 characters"),
        ("{{ '{:>50000000}'.format('x') }}", "50,000,000 characters"),
        ("{{ '{:>{w}}'.format('x', w=50000000) }}", "nested {} in format specs"),
        ("{{ '%500000000s' | format('x') }}", "500,000,000 characters"),
        ("{{ '%500000000s' % 'x' }}", "500,000,000 characters"),
        ("{{ 'a' * 10**9 }}", "1,000,000,000 characters"),
        ("{{ range(10**9) }}", "Range too big"),
        ("{% set x = 'a' * 1000000 %}{{ x ~ x ~ x ~ x ~ x }}", "5,000,000 characters"),
        ("{% set x = 'a' * 1000000 %}{{ x + x + x + x + x }}", "characters"),
        ("{{ ('a' * 1000000) | replace('a', 'aaaaa') }}", "5,000,000 characters"),
        ("{{ ('a\n' * 1000000) | indent(100) }}", "characters"),
        ("{{ ('a ' * 1000000) | wordwrap(1, wrapstring='----------') }}", "characters"),
        ("{{ (['a' * 1000000] * 5) | join }}", "5,000,000 characters"),
        ("{{ ','.join(['a' * 1000000] * 5) }}", "characters"),
        ("{{ [1] | batch(10**9, 'x') | list }}", "1,000,000,000 items"),
        ("{{ (1).to_bytes(10**9, 'big') }}", "characters"),
        ("{{ 'a\tb'.expandtabs(10**9) }}", "characters"),
        ("{{ lipsum(10**9) }}", "at most 20 paragraphs"),
        ("{{ metadata | tojson(10**8) }}", "indents by at most"),
        (
            "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
            "{{ f(40) }}",
            "must render within 2 s",
        ),
    ],
)
def test_templates_over_budget_are_refused_quickly(template: str, expected: str) -> None:
    started = time.process_time()
    error = error_for(template + "{{ response }}")
    assert re.search(re.escape(expected).replace("\\|", "|"), error.message), error.message
    assert time.process_time() - started < 4.0


def test_validation_refuses_a_template_over_budget_before_it_is_saved() -> None:
    nested = "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}"
    started = time.process_time()
    errors = validate_templates(rubric(user=nested + "{{ response }}"))
    assert time.process_time() - started < 4.0
    assert [e.part for e in errors] == ["user"]
    assert "loop iterations" in errors[0].message


def test_a_long_but_honest_prompt_renders_within_the_budget() -> None:
    messages = [{"role": "user", "content": f"message {i}"} for i in range(100_000)]
    ctx = PromptContext(input_messages=messages, response="r")
    template = "{% for m in input_messages %}{{ m.content }}\n{% endfor %}{{ response }}"
    text = render_user(template, ctx)
    assert text.count("\n") == 100_000


def test_syntax_error_has_line_number() -> None:
    error = error_for("ok\n{{ response }\nmore", part="system")
    assert error.part == "system"
    assert error.line == 2
    assert error.message.startswith("syntax error: unexpected '}'")
    assert str(error).startswith("system template, line 2: syntax error")
    unclosed = error_for("ok\n{% for x in criteria %}\n{{ x.key }}\n")
    assert unclosed.line == 3
    assert "Jinja was looking for the following tags: 'endfor' or 'else'" in unclosed.message


def test_undefined_variable_is_named_with_line() -> None:
    error = error_for("a\nb\n{{ respons }}")
    assert error.line == 3
    assert error.message.startswith("undefined variable 'respons'; available variables: ")
    assert "response" in error.message


def test_undefined_attribute_is_named() -> None:
    error = error_for("{{ metadata.missing }}")
    assert error.line == 1
    assert "undefined attribute or key 'missing' of a dict object" in error.message


def test_other_runtime_errors_are_reported_with_line() -> None:
    error = error_for("\n\n{{ 1 / 0 }}")
    assert (error.line, error.message) == (3, "ZeroDivisionError: division by zero")


def test_template_error_to_dict_equality_and_pickle() -> None:
    error = TemplateError("user", 3, "boom")
    assert pickle.loads(pickle.dumps(error)) == error
    assert error.to_dict() == {"part": "user", "line": 3, "message": "boom"}
    assert error == TemplateError("user", 3, "boom")
    assert str(TemplateError("system", None, "x")) == "system template: x"


def test_default_rubric_prompt_content() -> None:
    defn = rubric(
        examples=[
            FewShotExample(
                response="Lyon.", label={"Correct": False, "Depth": 1}, critique="Wrong city."
            )
        ]
    )
    prompt = render_prompt(defn, CTX)
    system = prompt.system
    assert system.startswith('You are an impartial expert judge applying the rubric "Helpfulness"')
    assert "Judge the helpfulness of answers." in system
    # Criteria in evaluation order with their level descriptions.
    assert system.index('1. Correctness (key "Correct")') < system.index('2. Depth (key "Depth")')
    assert "integer score from 1 to 3. Failing it fails the whole response." in system
    assert "   - 2: level 2 text" in system
    assert "- If the response is empty, every criterion fails." in system
    assert "## Reward these behaviours\n- Cites sources." in system
    assert "## Penalise these behaviours\n- Flattery." in system
    assert 'Correct scores: {"Correct": false, "Depth": 1}' in system
    assert "Why: Wrong city." in system
    assert '"$schema": "https://json-schema.org/draft/2020-12/schema"' in system
    user = prompt.user
    for expected in (
        "[user]\nWhat is the capital of France?",
        "<target_document>\nDOC TEXT\n</target_document>",
        '<reference title="Atlas">\nParis is the capital.\n</reference>',
        "<reference_answer>",
        "<response>\nParis.\n</response>",
    ):
        assert expected in user
    assert prompt.messages()[1] == {"role": "user", "content": user}


def test_default_prompt_omits_empty_sections() -> None:
    prompt = render_prompt(rubric(), PromptContext(response="Paris."))
    assert "## Examples" not in prompt.system
    assert "<target_document>" not in prompt.user
    assert "<input>" not in prompt.user
    assert "<reference" not in prompt.user
    assert "\n\n\n" not in prompt.system + prompt.user


def test_default_preference_prompt() -> None:
    defn = get_builtin("pairwise_preference")
    ctx = PromptContext(
        input_messages=[{"role": "user", "content": "Q?"}], response_a="AAA", response_b="BBB"
    )
    prompt = render_prompt(defn, ctx)
    assert defn.preference_instruction in prompt.system
    assert '1. Cites authoritative sources (key "Authoritative_Sources")' in prompt.system
    assert "<response_a>\nAAA\n</response_a>" in prompt.user
    assert "<response_b>\nBBB\n</response_b>" in prompt.user


def test_empty_templates_fall_back_to_defaults_and_materialize_freezes_them() -> None:
    defn = rubric()
    assert effective_templates(defn) == default_templates(defn)
    frozen = materialize_templates(defn)
    assert (frozen.system_template, frozen.user_template) == default_templates(defn)
    assert render_prompt(frozen, CTX) == render_prompt(defn, CTX)
    custom = rubric(system="S {{ rubric.title }}", user="U {{ response }}")
    assert render_prompt(custom, CTX).system == "S Helpfulness"
    assert render_prompt(custom, CTX).user == "U Paris."


def test_from_studio_record() -> None:
    ctx = PromptContext.from_studio_record(
        {
            "input": [{"role": "user", "content": "Q"}],
            "references": ["plain text ref"],
            "responses": ["a", "b"],
            "metadata": {"k": 1},
        }
    )
    assert ctx.references == [{"title": "Reference 1", "text": "plain text ref"}]
    assert (ctx.response_a, ctx.response_b, ctx.prompt) == ("a", "b", "Q")


def test_multipart_message_content_is_flattened() -> None:
    ctx = PromptContext(input_messages=[{"role": "user", "content": [{"text": "hi"}]}])
    assert render_user("{{ prompt }}", ctx) == "hi"


def test_validate_templates_accepts_defaults() -> None:
    assert validate_templates(rubric()) == []


def test_validate_templates_finds_unknown_variables_in_untaken_branches() -> None:
    defn = rubric(user="{{ response }}\n{% if false %}\n{{ nonsense }}\n{% endif %}")
    [error] = validate_templates(defn)
    assert (error.part, error.line) == ("user", 3)
    assert "undefined variable 'nonsense'" in error.message


def test_validate_templates_reports_each_part() -> None:
    defn = rubric(system="{{ ''.__class__ }}", user="{% if %}")
    errors = validate_templates(defn)
    assert [e.part for e in errors] == ["system", "user"]
    assert "not allowed in templates" in errors[0].message
    assert errors[1].message.startswith("syntax error")


def test_validate_templates_requires_the_response() -> None:
    [error] = validate_templates(rubric(user="Judge this."))
    assert "never shows the response" in error.message
    pref = get_builtin("pairwise_preference").model_copy(
        update={"user_template": "{{ response_a }}"}
    )
    [error] = validate_templates(pref)
    assert "never shows the response b" in error.message


def test_local_variables_are_not_reported_as_unknown() -> None:
    defn = rubric(
        user="{% set x = 1 %}{% for c in criteria %}{{ c.key }}{% endfor %}{{ x }}{{ response }}"
    )
    assert validate_templates(defn) == []


def test_estimate_tokens() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    prompt = render_prompt(rubric(), SAMPLE_CONTEXT)
    assert prompt.estimated_tokens == estimate_tokens(prompt.system) + estimate_tokens(prompt.user)


def test_prepared_rubric_renders_exactly_like_the_plain_call() -> None:
    from app.rubrics.builtin import BUILTIN_TEMPLATES
    from app.rubrics.prompting import SAMPLE_CONTEXT, prepare_rubric, render_prompt

    for definition in BUILTIN_TEMPLATES.values():
        prepared = prepare_rubric(definition)
        assert render_prompt(definition, SAMPLE_CONTEXT, prepared) == render_prompt(
            definition, SAMPLE_CONTEXT
        )


def test_builtin_system_prompts_are_rendered_once_per_rubric() -> None:
    from app.rubrics.builtin import BUILTIN_TEMPLATES
    from app.rubrics.prompting import prepare_rubric

    for definition in BUILTIN_TEMPLATES.values():
        prepared = prepare_rubric(definition)
        assert prepared.system_text == render_prompt(definition, SAMPLE_CONTEXT).system
        assert prepared.system_text == render_prompt(definition, CTX).system


@pytest.mark.parametrize(
    ("system", "rubric_only"),
    [
        ("{% for c in criteria %}{{ c.name }}{% endfor %} {{ rubric.title }}", True),
        ("{{ output_schema }} {{ examples | length }} {{ edge_case_rules | join(',') }}", True),
        ("Judge {{ response }}", False),
        ("{{ metadata.get('lang') }}", False),
        ("{{ criteria | random }}", False),
        ("{{ lipsum(1) }}", False),
        ("{% for i in range(2) %}{{ i }}{% endfor %}", True),
        ("{% if %}", False),
    ],
)
def test_only_a_system_template_without_rollout_inputs_is_rendered_once(
    system: str, rubric_only: bool
) -> None:
    from app.rubrics.prompting import depends_on_rubric_only, prepare_rubric

    assert depends_on_rubric_only(system) is rubric_only
    prepared = prepare_rubric(rubric(system=system, user="{{ response }}"))
    assert (prepared.system_text is not None) is rubric_only


def test_a_rollout_dependent_system_prompt_is_rendered_per_rollout() -> None:
    from app.rubrics.prompting import prepare_rubric

    definition = rubric(system="About {{ prompt }}", user="{{ response }}")
    prepared = prepare_rubric(definition)
    assert render_prompt(definition, CTX, prepared).system == "About What is the capital of France?"
    other = PromptContext(input_messages=[{"role": "user", "content": "Why?"}], response="x")
    assert render_prompt(definition, other, prepared).system == "About Why?"


def test_a_failing_rubric_only_system_template_still_fails_for_each_rollout() -> None:
    from app.rubrics.prompting import prepare_rubric

    definition = rubric(system="{{ rubric.no_such_field }}", user="{{ response }}")
    prepared = prepare_rubric(definition)
    assert prepared.system_text is None
    with pytest.raises(TemplateError) as exc:
        render_prompt(definition, CTX, prepared)
    assert exc.value.part == "system"
