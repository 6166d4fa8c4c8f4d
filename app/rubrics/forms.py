"""The rubric editor's HTML form <-> draft JSON, and readable problems for a draft.

Pure: no FastAPI, no database. A draft keeps exactly what was typed (even when it is not yet
a valid definition) so autosave never loses text; `check_draft` says what still needs fixing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from app.rubrics.definition import RubricDefinition
from app.rubrics.prompting import TemplateError, validate_templates

_CRITERION_FIELD = re.compile(r"^c-(\d{1,3})-(key|name|description|type|weight|hard_fail)$")
_LEVEL_FIELD = re.compile(r"^c-(\d{1,3})-l-(\d{1,3})-(value|description)$")
_LIST_FIELDS = ("edge_case_rules", "desired_behaviours", "discouraged_behaviours")
_TEXT_FIELDS = (
    "title",
    "task_description",
    "preference_instruction",
    "system_template",
    "user_template",
)
AGGREGATIONS = ("weighted_mean", "all_must_pass", "minimum", "per_item_mean")
AGGREGATION_LABELS = {
    "weighted_mean": "Weighted mean of the criteria",
    "all_must_pass": "All must pass (1 or 0)",
    "minimum": "Minimum criterion",
    "per_item_mean": "Mean per item (list outputs, e.g. comments)",
}


def _text(value: Any) -> str:
    # Browsers send textarea line breaks as CRLF; the judge prompt uses plain LF.
    return str(value).replace("\r\n", "\n").replace("\r", "\n") if value is not None else ""


def _number(value: str, kind: type[int] | type[float]) -> Any:
    """The typed number, or the text itself so the problem is reported and nothing is lost."""
    text = value.strip()
    try:
        return kind(text)
    except ValueError:
        return text


def derive_key(name: str, taken: set[str]) -> str:
    """A criterion key from its name ('Grounded in the contract' -> 'Grounded_in_the_contract')."""
    words = re.findall(r"[A-Za-z0-9]+", name)
    key = "_".join(words)[:60] or "Criterion"
    if not key[0].isalpha():
        key = "C_" + key
    candidate, n = key, 2
    while candidate in taken:
        candidate, n = f"{key}_{n}", n + 1
    return candidate


def draft_from_form(form: Mapping[str, str], mode: str) -> dict[str, Any]:
    """The draft JSON for the editor form's fields (criteria are `c-<i>-<field>` in order)."""
    draft: dict[str, Any] = {"mode": mode}
    for name in _TEXT_FIELDS:
        draft[name] = _text(form.get(name, ""))
    for name in _LIST_FIELDS:
        lines = _text(form.get(name, "")).split("\n")
        draft[name] = [line.strip() for line in lines if line.strip()]
    aggregation = str(form.get("aggregation", "weighted_mean"))
    draft["aggregation"] = aggregation
    item_field = str(form.get("item_field", "")).strip()
    # The item list only exists for per-item aggregation; elsewhere a leftover value is noise.
    draft["item_field"] = item_field if aggregation == "per_item_mean" and item_field else None

    criteria: dict[int, dict[str, Any]] = {}
    levels: dict[int, dict[int, dict[str, Any]]] = {}
    for name, raw in form.items():
        match = _CRITERION_FIELD.match(name)
        if match:
            criteria.setdefault(int(match.group(1)), {})[match.group(2)] = raw
            continue
        match = _LEVEL_FIELD.match(name)
        if match:
            by_level = levels.setdefault(int(match.group(1)), {})
            by_level.setdefault(int(match.group(2)), {})[match.group(3)] = raw
    taken = {str(c.get("key", "")).strip() for c in criteria.values()}
    result = []
    for index in sorted(criteria):
        raw_criterion = criteria[index]
        name = _text(raw_criterion.get("name", "")).strip()
        key = str(raw_criterion.get("key", "")).strip()
        if not key and name:
            key = derive_key(name, taken)
            taken.add(key)
        ctype = str(raw_criterion.get("type", "boolean"))
        criterion: dict[str, Any] = {
            "key": key,
            "name": name,
            "description": _text(raw_criterion.get("description", "")).strip(),
            "type": ctype,
            "levels": [],
            "weight": _number(str(raw_criterion.get("weight", "1")), float),
            "hard_fail": str(raw_criterion.get("hard_fail", "")) in ("on", "true", "1", "yes"),
        }
        if ctype == "scale":
            criterion["levels"] = [
                {
                    "value": _number(str(level.get("value", "")), int),
                    "description": _text(level.get("description", "")).strip(),
                }
                for _, level in sorted(levels.get(index, {}).items())
            ]
        result.append(criterion)
    draft["criteria"] = result
    return draft


@dataclass
class EditorLevel:
    value: Any
    description: str


@dataclass
class EditorCriterion:
    key: str
    name: str
    description: str
    type: str
    weight: Any
    hard_fail: bool
    levels: list[EditorLevel] = field(default_factory=list)


@dataclass
class EditorState:
    """A draft shaped for the editor template, whatever the draft JSON looks like."""

    mode: str
    title: str
    task_description: str
    preference_instruction: str
    system_template: str
    user_template: str
    edge_case_rules: str
    desired_behaviours: str
    discouraged_behaviours: str
    aggregation: str
    item_field: str
    criteria: list[EditorCriterion]
    examples: list[dict[str, Any]]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def editor_state(draft: Mapping[str, Any], mode: str) -> EditorState:
    """Read a (possibly invalid or hand-written) draft defensively for display."""
    criteria = []
    for raw in _as_list(draft.get("criteria")):
        if not isinstance(raw, dict):
            continue
        levels = [
            EditorLevel(level.get("value", ""), _str(level.get("description")))
            for level in _as_list(raw.get("levels"))
            if isinstance(level, dict)
        ]
        criteria.append(
            EditorCriterion(
                key=_str(raw.get("key")),
                name=_str(raw.get("name")),
                description=_str(raw.get("description")),
                type="scale" if raw.get("type") == "scale" else "boolean",
                weight=raw.get("weight", 1.0),
                hard_fail=bool(raw.get("hard_fail")),
                levels=levels,
            )
        )
    return EditorState(
        mode=mode,
        title=_str(draft.get("title")),
        task_description=_str(draft.get("task_description")),
        preference_instruction=_str(draft.get("preference_instruction")),
        system_template=_str(draft.get("system_template")),
        user_template=_str(draft.get("user_template")),
        edge_case_rules="\n".join(_str(x) for x in _as_list(draft.get("edge_case_rules"))),
        desired_behaviours="\n".join(_str(x) for x in _as_list(draft.get("desired_behaviours"))),
        discouraged_behaviours="\n".join(
            _str(x) for x in _as_list(draft.get("discouraged_behaviours"))
        ),
        aggregation=_str(draft.get("aggregation")) or "weighted_mean",
        item_field=_str(draft.get("item_field")),
        criteria=criteria,
        examples=[
            _example_for_display(e) for e in _as_list(draft.get("examples")) if isinstance(e, dict)
        ],
    )


# What a few-shot example holds when its optional fields are left out (see FewShotExample).
EXAMPLE_DEFAULTS: dict[str, Any] = {
    "rollout_id": None,
    "input_excerpt": "",
    "response": "",
    "response_b": "",
    "label": {},
    "critique": "",
}


def normalise_example(example: Mapping[str, Any]) -> dict[str, Any]:
    """The example with every optional field present (what was typed is kept as typed)."""
    return {**EXAMPLE_DEFAULTS, **example}


def _example_for_display(example: Mapping[str, Any]) -> dict[str, Any]:
    shown = normalise_example(example)
    if not isinstance(shown["label"], Mapping):
        shown["label"] = {}
    for name in ("response", "response_b", "critique", "input_excerpt"):
        shown[name] = _str(shown[name])
    return shown


def _loc_text(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _describe_error(error: Any, draft: Mapping[str, Any]) -> str:
    loc = tuple(error.get("loc", ()))
    message = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    # Name the criterion as the expert knows it, not only by its position.
    if len(loc) >= 2 and loc[0] == "criteria" and isinstance(loc[1], int):
        criteria = _as_list(draft.get("criteria"))
        if loc[1] < len(criteria) and isinstance(criteria[loc[1]], dict):
            name = _str(criteria[loc[1]].get("name")) or f"#{loc[1] + 1}"
            rest = _loc_text(loc[2:])
            return f"Criterion “{name}”{' ' + rest if rest else ''}: {message}"
    where = _loc_text(loc)
    return f"{where}: {message}" if where else message


@dataclass
class DraftCheck:
    """What is wrong with a draft: definition problems, then template errors (with lines)."""

    definition: RubricDefinition | None
    problems: list[str]
    template_errors: list[TemplateError]

    @property
    def ok(self) -> bool:
        return self.definition is not None and not self.problems and not self.template_errors

    def all_messages(self) -> list[str]:
        return self.problems + [str(error) for error in self.template_errors]


def parse_definition(draft: Mapping[str, Any]) -> tuple[RubricDefinition | None, list[str]]:
    """The definition, or None and one readable line per problem."""
    try:
        return RubricDefinition.model_validate(dict(draft)), []
    except ValidationError as exc:
        return None, [_describe_error(error, draft) for error in exc.errors()]


def check_draft(draft: Mapping[str, Any]) -> DraftCheck:
    """Validate the structure and, when it is valid, the templates (sandboxed sample render)."""
    definition, problems = parse_definition(draft)
    if definition is None:
        return DraftCheck(None, problems, [])
    return DraftCheck(definition, [], validate_templates(definition))
