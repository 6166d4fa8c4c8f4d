"""Render a rubric's judge prompt (system + user) from its Jinja templates, in a sandbox.

Templates are user-written, so they run in Jinja's immutable sandbox with StrictUndefined;
every failure becomes a TemplateError naming the part, the line and what went wrong.
Template whitespace: `trim_blocks` and `lstrip_blocks` are on, so `{% ... %}` lines leave no
blank lines behind. Output is plain text for an LLM, so nothing is HTML-escaped.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from jinja2 import Template, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError

from app.rubrics.definition import RubricDefinition, RubricMode
from app.rubrics.output_schema import build_output_schema
from app.rubrics.prompt_defaults import default_templates
from app.rubrics.reference_answer import reference_answer_text
from app.rubrics.template_sandbox import BudgetExceeded, make_environment

Part = Literal["system", "user"]

TEMPLATE_VARIABLES: dict[str, str] = {
    "input_messages": "The rollout's input conversation: a list of {role, content}.",
    "prompt": "The text of the last user message of the input.",
    "target_document": "The document under review (e.g. the contract), or empty.",
    "references": "Reference documents: a list of {title, text} (may be empty).",
    "response": "The response to judge (rubric mode).",
    "response_a": "Preference mode: the first response of the pair.",
    "response_b": "Preference mode: the second response of the pair.",
    "reference_answer": "A known good answer as text (an object, or its JSON text, is "
    "pretty-printed), or empty.",
    "metadata": "The rollout's free metadata object; keys vary, so use metadata.get('key').",
    "criteria": "The criteria in evaluation order: key, name, description, type (boolean or "
    "scale), levels [{value, description}], weight, hard_fail, position (from 1), min, max.",
    "edge_case_rules": "The rubric's edge-case rules (list of text).",
    "desired_behaviours": "Behaviours to reward (list of text).",
    "discouraged_behaviours": "Behaviours to penalise (list of text).",
    "examples": "Few-shot examples: input_excerpt, response, response_b, label {key: value}, "
    "critique.",
    "output_schema": "The JSON Schema of the judge's answer, as pretty-printed JSON text.",
    "rubric": "The whole rubric definition (mode, title, task_description, aggregation, "
    "item_field, preference_instruction, ...).",
}

# The variables that are the same for every rollout of a rubric (see template_variables).
RUBRIC_VARIABLES = frozenset(
    {
        "criteria",
        "edge_case_rules",
        "desired_behaviours",
        "discouraged_behaviours",
        "examples",
        "output_schema",
        "rubric",
    }
)
# Filters and globals whose output differs from one rendering to the next.
_UNSTABLE_FILTERS = frozenset({"random"})
_UNSTABLE_GLOBALS = frozenset({"lipsum"})

TEMPLATE_FILTERS: dict[str, str] = {
    "json": "Pretty JSON text of a value, unescaped: {{ example.label | json }}.",
}

_UNSAFE_ATTRIBUTE = re.compile(r"access to attribute '([^']*)' of '([^']*)' object is unsafe")
_UNDEFINED_NAME = re.compile(r"^'([^']*)' is undefined$")
_MISSING_ATTRIBUTE = re.compile(r"^'([^']*)' has no attribute '([^']*)'$")


class TemplateError(Exception):
    """A template that cannot be compiled or rendered, with where and why in plain words."""

    def __init__(self, part: Part, line: int | None, message: str) -> None:
        where = f"{part} template" + (f", line {line}" if line is not None else "")
        super().__init__(f"{where}: {message}")
        self.part: Part = part
        self.line = line
        self.message = message

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TemplateError) and (self.part, self.line, self.message) == (
            other.part,
            other.line,
            other.message,
        )

    def __hash__(self) -> int:
        return hash((self.part, self.line, self.message))

    def __reduce__(self) -> tuple[Any, ...]:
        return (TemplateError, (self.part, self.line, self.message))

    def to_dict(self) -> dict[str, Any]:
        return {"part": self.part, "line": self.line, "message": self.message}


@dataclass(frozen=True)
class RenderedPrompt:
    system: str
    user: str

    def messages(self) -> list[dict[str, str]]:
        """The prompt as chat messages."""
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]

    @property
    def estimated_tokens(self) -> int:
        return estimate_tokens(self.system) + estimate_tokens(self.user)


@dataclass
class PromptContext:
    """The rollout fields a judge prompt can show."""

    # content is text, or a list of {"text": ...} parts (only the text is shown)
    input_messages: list[dict[str, Any]] = field(default_factory=list)
    target_document: str | None = None
    references: list[dict[str, str]] = field(default_factory=list)
    response: str = ""
    response_a: str | None = None
    response_b: str | None = None
    reference_answer: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        """The last user message's text ('' when there is none)."""
        for message in reversed(self.input_messages):
            if message.get("role") == "user":
                return str(message.get("content", ""))
        return ""

    @classmethod
    def from_studio_record(cls, record: dict[str, Any]) -> PromptContext:
        """Build from a Studio JSONL rollout (plain-string references and `responses` pairs)."""
        references = [
            ref if isinstance(ref, dict) else {"title": f"Reference {i + 1}", "text": str(ref)}
            for i, ref in enumerate(record.get("references") or [])
        ]
        responses = record.get("responses") or [None, None]
        return cls(
            input_messages=list(record.get("input") or []),
            target_document=record.get("target_document"),
            references=references,
            response=record.get("response") or "",
            response_a=responses[0],
            response_b=responses[1],
            reference_answer=record.get("reference_answer"),
            metadata=dict(record.get("metadata") or {}),
        )


_EMPTY_CONTEXT = PromptContext()


def estimate_tokens(text: str) -> int:
    """A rough token count (characters / 4, rounded up): an estimate, not a tokenizer."""
    return math.ceil(len(text) / 4)


_ENV = make_environment()


def _template_line(exc: BaseException) -> int | None:
    # Jinja rewrites tracebacks so template frames carry the template's own line numbers.
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _describe(exc: Exception) -> str:
    text = str(exc)
    if isinstance(exc, BudgetExceeded):
        return text
    if isinstance(exc, SecurityError):
        match = _UNSAFE_ATTRIBUTE.search(text)
        if match:
            return (
                f"'{match.group(1)}' (on a {match.group(2)}) is not allowed in templates: "
                "templates can only read the documented variables, not internal attributes "
                "or methods that change data"
            )
        return text if "not allowed in templates" in text else f"{text} (not allowed in templates)"
    if isinstance(exc, UndefinedError):
        match = _UNDEFINED_NAME.match(text)
        if match:
            return f"undefined variable '{match.group(1)}'; available variables: " + ", ".join(
                TEMPLATE_VARIABLES
            )
        match = _MISSING_ATTRIBUTE.match(text)
        if match:
            return (
                f"undefined attribute or key '{match.group(2)}' of a {match.group(1)}; "
                "for optional keys use .get('key') or | default('')"
            )
        return f"undefined value: {text}"
    return f"{type(exc).__name__}: {text}"


@lru_cache(maxsize=256)
def _compile(source: str) -> Template:
    return _ENV.from_string(source)


def _compile_part(part: Part, source: str) -> Template:
    try:
        return _compile(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(part, exc.lineno, f"syntax error: {exc.message}") from None


def _render_part(part: Part, source: str, variables: dict[str, Any]) -> str:
    template = _compile_part(part, source)
    try:
        # The bounded template stops at the budget (time, loops, MAX_RENDERED_CHARS).
        return template.render(variables)
    except Exception as exc:  # any failure inside user template code is the template's fault
        raise TemplateError(part, _template_line(exc), _describe(exc)) from None


def render_sandboxed(source: str, variables: dict[str, Any], part: Part = "user") -> str:
    """Render a user-written template in the prompt sandbox (no attribute access beyond the
    documented variables, bounded output). TemplateError says where and why it failed."""
    return _render_part(part, source, variables)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


def _message_text(content: Any) -> str:
    # Multimodal-style content is a list of parts; only the text parts matter to the judge.
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", "")) if isinstance(part, dict) else str(part) for part in content
        )
    return _text(content)


@dataclass(frozen=True)
class PreparedRubric:
    """The rollout-independent part of the template variables and the template sources.

    Building it costs a model dump and a schema dump; a judge run prepares it once and renders
    thousands of prompts with it.
    """

    rubric: dict[str, Any]
    criteria: list[dict[str, Any]]
    output_schema_text: str
    system_source: str
    user_source: str
    # The system prompt, rendered once, when its template reads only rubric variables (the
    # built-in ones do: ~200 µs saved per judge call); None means render it per rollout.
    system_text: str | None = None


@lru_cache(maxsize=256)
def depends_on_rubric_only(source: str) -> bool:
    """True when a template renders the same text for every rollout of a rubric: it reads only
    RUBRIC_VARIABLES (and globals such as range) and nothing random (the random filter, lipsum)."""
    try:
        ast = _ENV.parse(source)
    except TemplateSyntaxError:
        return False
    if meta.find_undeclared_variables(ast) - RUBRIC_VARIABLES:
        return False
    if any(n.name in _UNSTABLE_GLOBALS for n in ast.find_all(nodes.Name)):
        return False
    return not any(f.name in _UNSTABLE_FILTERS for f in ast.find_all(nodes.Filter))


def prepare_rubric(defn: RubricDefinition) -> PreparedRubric:
    rubric = defn.model_dump(mode="json")
    criteria = [
        data | {"position": position, "min": criterion.min_value, "max": criterion.max_value}
        for position, (criterion, data) in enumerate(
            zip(defn.criteria, rubric["criteria"], strict=True), start=1
        )
    ]
    system_source, user_source = effective_templates(defn)
    prepared = PreparedRubric(
        rubric=rubric,
        criteria=criteria,
        output_schema_text=json.dumps(build_output_schema(defn), indent=2, ensure_ascii=False),
        system_source=system_source,
        user_source=user_source,
    )
    if not depends_on_rubric_only(system_source):
        return prepared
    try:
        # Any context will do: the template reads none of the rollout's variables.
        variables = template_variables(defn, _EMPTY_CONTEXT, prepared)
        system_text = _render_part("system", system_source, variables)
    except TemplateError:  # reported where it always is: when a rollout's prompt is rendered
        return prepared
    return dataclasses.replace(prepared, system_text=system_text)


def template_variables(
    defn: RubricDefinition, ctx: PromptContext, prepared: PreparedRubric | None = None
) -> dict[str, Any]:
    """The variables a template sees (documented in TEMPLATE_VARIABLES)."""
    prepared = prepared or prepare_rubric(defn)
    messages = [
        {"role": str(m.get("role", "user")), "content": _message_text(m.get("content"))}
        for m in ctx.input_messages
    ]
    references = [
        {"title": str(r.get("title", "")), "text": _text(r.get("text"))} for r in ctx.references
    ]
    return {
        "input_messages": messages,
        "prompt": _message_text(
            next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        ),
        "target_document": ctx.target_document or "",
        "references": references,
        "response": ctx.response or "",
        "response_a": ctx.response_a or "",
        "response_b": ctx.response_b or "",
        "reference_answer": reference_answer_text(ctx.reference_answer),
        "metadata": dict(ctx.metadata),
        "criteria": prepared.criteria,  # shared safely: the sandbox is immutable
        "edge_case_rules": list(defn.edge_case_rules),
        "desired_behaviours": list(defn.desired_behaviours),
        "discouraged_behaviours": list(defn.discouraged_behaviours),
        "examples": prepared.rubric["examples"],
        "output_schema": prepared.output_schema_text,
        "rubric": prepared.rubric,
    }


def effective_templates(defn: RubricDefinition) -> tuple[str, str]:
    """The (system, user) templates in force: the definition's own, or the defaults if empty."""
    default_system, default_user = default_templates(defn)
    return (defn.system_template or default_system, defn.user_template or default_user)


def materialize_templates(defn: RubricDefinition) -> RubricDefinition:
    """A copy with empty templates replaced by the defaults, so a frozen version keeps
    rendering the same even if the default templates change in a later release."""
    system, user = effective_templates(defn)
    return defn.model_copy(update={"system_template": system, "user_template": user})


def render_prompt(
    defn: RubricDefinition, ctx: PromptContext, prepared: PreparedRubric | None = None
) -> RenderedPrompt:
    """Render the judge prompt for one rollout (raises TemplateError). Pass `prepared`
    (from prepare_rubric) when rendering many prompts with one definition."""
    prepared = prepared or prepare_rubric(defn)
    variables = template_variables(defn, ctx, prepared)
    system = prepared.system_text
    if system is None:
        system = _render_part("system", prepared.system_source, variables)
    return RenderedPrompt(system=system, user=_render_part("user", prepared.user_source, variables))


_SAMPLE_RESPONSE = "SAMPLE RESPONSE 7f3a: the answer under evaluation."
_SAMPLE_RESPONSE_A = "SAMPLE RESPONSE A 7f3a: the first answer."
_SAMPLE_RESPONSE_B = "SAMPLE RESPONSE B 7f3a: the second answer."

SAMPLE_CONTEXT = PromptContext(
    input_messages=[
        {"role": "system", "content": "You are a careful assistant."},
        {"role": "user", "content": "Review the attached contract against the playbook."},
    ],
    target_document="1. Governing law. This Agreement is governed by the laws of Texas.",
    references=[{"title": "Playbook", "text": "R1: Delaware, New York or English law only."}],
    response=_SAMPLE_RESPONSE,
    response_a=_SAMPLE_RESPONSE_A,
    response_b=_SAMPLE_RESPONSE_B,
    reference_answer="A comment flagging the Texas governing-law clause under R1.",
    metadata={"source": "sample"},
)


def _unknown_variables(part: Part, source: str) -> list[TemplateError]:
    try:
        ast = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        return [TemplateError(part, exc.lineno, f"syntax error: {exc.message}")]
    known = set(TEMPLATE_VARIABLES) | set(_ENV.globals)
    unknown = meta.find_undeclared_variables(ast) - known
    errors = []
    for name in sorted(unknown):
        line = next(
            (n.lineno for n in ast.find_all(nodes.Name) if n.name == name and n.ctx == "load"),
            None,
        )
        errors.append(
            TemplateError(
                part,
                line,
                f"undefined variable '{name}'; available variables: "
                + ", ".join(TEMPLATE_VARIABLES),
            )
        )
    return errors


def validate_templates(defn: RubricDefinition) -> list[TemplateError]:
    """Every problem with the definition's templates: syntax, unknown variables (even in
    branches a sample would not reach), render failures on a sample rollout, and a prompt
    that never shows the response(s) to judge. Empty list = fine."""
    sources: dict[Part, str] = dict(zip(("system", "user"), effective_templates(defn), strict=True))
    variables = template_variables(defn, SAMPLE_CONTEXT)
    errors: list[TemplateError] = []
    rendered: dict[Part, str] = {}
    for part, source in sources.items():
        static = _unknown_variables(part, source)
        if static:
            errors.extend(static)
            continue
        try:
            rendered[part] = _render_part(part, source, variables)
        except TemplateError as exc:
            errors.append(exc)
    if len(rendered) == 2:
        text = rendered["system"] + rendered["user"]
        needed = (
            {"response_a": _SAMPLE_RESPONSE_A, "response_b": _SAMPLE_RESPONSE_B}
            if defn.mode == RubricMode.preference
            else {"response": _SAMPLE_RESPONSE}
        )
        for name, sample in needed.items():
            if sample not in text:
                errors.append(
                    TemplateError(
                        "user",
                        None,
                        f"the prompt never shows the {name.replace('_', ' ')} to judge "
                        f"(add {{{{ {name} }}}} to the user template)",
                    )
                )
    return errors
