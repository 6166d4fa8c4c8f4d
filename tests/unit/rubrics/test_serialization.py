"""Tests for rubric-as-code documents: lossless YAML/JSON round trips and clear load errors."""

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.rubrics.builtin import BUILTIN_TEMPLATES, get_builtin
from app.rubrics.definition import (
    Criterion,
    FewShotExample,
    Level,
    RubricDefinition,
    content_hash,
)
from app.rubrics.serialization import (
    RubricDocument,
    RubricFormatError,
    RubricVersionDocument,
    dump_rubric,
    load_rubric,
)

# Free text: any Unicode (control characters, line and paragraph separators included).
texts = st.text(max_size=40)
multiline = st.lists(st.text(max_size=20), max_size=4).map("\n".join)
any_text = st.one_of(texts, multiline, st.sampled_from(["", " ", "yes", "null", "1.0", "- a"]))
keys = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,10}", fullmatch=True)
weights = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)
timestamps = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
) | st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from(
        [timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
    ),
)


@st.composite
def criteria_lists(draw: st.DrawFn) -> list[Criterion]:
    unique_keys = draw(st.lists(keys, min_size=1, max_size=4, unique=True))
    result = []
    for key in unique_keys:
        is_scale = draw(st.booleans())
        levels = []
        if is_scale:
            low = draw(st.integers(min_value=-3, max_value=3))
            count = draw(st.integers(min_value=2, max_value=5))
            levels = [
                Level(value=low + i, description=draw(any_text.filter(str.strip)))
                for i in range(count)
            ]
        result.append(
            Criterion(
                key=key,
                name=draw(any_text.filter(str.strip)),
                description=draw(any_text),
                type="scale" if is_scale else "boolean",
                levels=levels,
                weight=draw(weights),
                hard_fail=draw(st.booleans()),
            )
        )
    return result


@st.composite
def definitions(draw: st.DrawFn, mode: str) -> RubricDefinition:
    criteria = (
        draw(criteria_lists())
        if mode == "rubric"
        else draw(st.one_of(st.just([]), criteria_lists()))
    )
    examples = []
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        label: dict[str, Any] = {}
        if mode == "preference":
            label["winner"] = draw(st.sampled_from(["A", "B", "tie"]))
        for criterion in criteria:
            if mode == "preference" or not draw(st.booleans()):
                continue
            if criterion.type == "boolean":
                label[criterion.key] = draw(st.booleans())
            else:
                low, high = criterion.min_value, criterion.max_value
                label[criterion.key] = draw(
                    st.integers(low, high) | st.floats(low, high, allow_nan=False)
                )
        examples.append(
            FewShotExample(
                rollout_id=draw(st.none() | st.integers(min_value=1, max_value=2**40)),
                input_excerpt=draw(any_text),
                response=draw(any_text),
                response_b=draw(any_text) if mode == "preference" else "",
                label=label,
                critique=draw(any_text),
            )
        )
    per_item = mode == "rubric" and draw(st.booleans())
    if per_item:
        aggregation = "per_item_mean"
    elif mode == "rubric":
        aggregation = draw(st.sampled_from(["weighted_mean", "all_must_pass", "minimum"]))
    else:
        aggregation = "weighted_mean"
    return RubricDefinition(
        mode=mode,
        title=draw(any_text.filter(str.strip)),
        task_description=draw(any_text),
        criteria=criteria,
        edge_case_rules=draw(st.lists(any_text, max_size=3)),
        desired_behaviours=draw(st.lists(any_text, max_size=2)),
        discouraged_behaviours=draw(st.lists(any_text, max_size=2)),
        aggregation=aggregation,
        item_field=draw(keys.filter(lambda k: k not in {"criteria", "winner"}))
        if per_item
        else None,
        preference_instruction=draw(any_text.filter(str.strip)) if mode == "preference" else "",
        system_template=draw(any_text),
        user_template=draw(any_text),
        examples=examples,
    )


@st.composite
def documents(draw: st.DrawFn) -> RubricDocument:
    mode = draw(st.sampled_from(["rubric", "preference"]))
    versions = []
    for number in range(1, draw(st.integers(min_value=0, max_value=2)) + 1):
        definition = draw(definitions(mode))
        versions.append(
            RubricVersionDocument(
                number=number,
                definition=definition,
                change_note=draw(any_text),
                created_by=draw(texts),
                created_at=draw(timestamps),
                content_hash=content_hash(definition),
                approvals=[
                    {"by": draw(texts), "at": draw(timestamps), "comment": draw(any_text)}
                    for _ in range(draw(st.integers(min_value=0, max_value=2)))
                ],
            )
        )
    return RubricDocument(
        name=draw(any_text.filter(str.strip)),
        description=draw(any_text),
        mode=mode,
        draft=draw(st.none() | definitions(mode)),
        versions=versions,
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents(), fmt=st.sampled_from(["yaml", "json"]))
def test_round_trip_is_lossless(doc: RubricDocument, fmt: str) -> None:
    text = dump_rubric(doc, fmt)  # type: ignore[arg-type]
    loaded = load_rubric(text, fmt)  # type: ignore[arg-type]
    assert loaded.model_dump(mode="json") == doc.model_dump(mode="json")
    assert loaded == doc
    assert dump_rubric(loaded, fmt) == text  # type: ignore[arg-type]


def sample_document() -> RubricDocument:
    legal = get_builtin("legal_contract_review")
    return RubricDocument(
        name="Contract review",
        description="Per-comment judge",
        mode="rubric",
        draft=legal,
        versions=[
            RubricVersionDocument(
                number=1,
                definition=legal,
                change_note="First version",
                created_by="ana@example.com",
                created_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
                content_hash=content_hash(legal),
                approvals=[{"by": "lee@example.com", "at": "2025-01-03T00:00:00Z"}],
            )
        ],
    )


def test_yaml_is_readable_with_block_templates() -> None:
    text = dump_rubric(sample_document(), "yaml")
    assert text.startswith("format_version: 1\nname: Contract review\n")
    assert "  system_template: |" in text
    assert "created_at: '2025-01-02T03:04:05Z'" in text
    assert yaml.safe_load(text)["versions"][0]["approvals"][0]["by"] == "lee@example.com"


def test_builtins_round_trip_in_both_formats() -> None:
    for name, defn in BUILTIN_TEMPLATES.items():
        doc = RubricDocument(name=name, mode=defn.mode, draft=defn)
        for fmt in ("yaml", "json"):
            assert load_rubric(dump_rubric(doc, fmt), fmt) == doc


def test_naive_timestamps_are_taken_as_utc() -> None:
    approval = {"by": "x", "at": datetime(2025, 1, 1, 12, 0)}
    doc = sample_document().model_copy(deep=True)
    doc.versions[0] = RubricVersionDocument.model_validate(
        doc.versions[0].model_dump() | {"approvals": [approval]}
    )
    assert doc.versions[0].approvals[0].at.tzinfo is UTC


def test_yaml_syntax_error_has_line() -> None:
    with pytest.raises(RubricFormatError) as exc:
        load_rubric("format_version: 1\nname: x\nmode: [rubric\n", "yaml")
    [issue] = exc.value.issues
    assert issue.path == "(document)"
    assert issue.line == 4
    assert issue.message.startswith("invalid YAML:")


def test_json_syntax_error_has_line() -> None:
    with pytest.raises(RubricFormatError) as exc:
        load_rubric('{\n"format_version": 1,\n}', "json")
    assert exc.value.issues[0].line == 3
    assert "invalid JSON" in str(exc.value)


def test_field_errors_name_the_path_and_yaml_line() -> None:
    text = dump_rubric(sample_document(), "yaml")
    lines = text.splitlines()
    bad_line = next(i for i, line in enumerate(lines) if "key: Actionability" in line)
    lines[bad_line] = lines[bad_line].replace("Actionability", "9bad")
    with pytest.raises(RubricFormatError) as exc:
        load_rubric("\n".join(lines), "yaml")
    issues = {issue.path: issue for issue in exc.value.issues}
    assert "draft.criteria[2].key" in issues
    assert issues["draft.criteria[2].key"].line == bad_line + 1
    assert "should match pattern" in issues["draft.criteria[2].key"].message


def test_model_validator_errors_name_the_field() -> None:
    data = sample_document().model_dump(mode="json")
    data["draft"]["criteria"][1]["key"] = "TargetDocument_Grounding"
    del data["versions"][0]["created_by"]
    data["surprise"] = True
    with pytest.raises(RubricFormatError) as exc:
        load_rubric(yaml.safe_dump(data), "yaml")
    text = str(exc.value)
    issues = {issue.path: issue for issue in exc.value.issues}
    duplicate = issues["draft.criteria[1].key"]
    assert duplicate.message.startswith("duplicate criterion key 'TargetDocument_Grounding'")
    assert duplicate.line is not None
    assert "key: TargetDocument_Grounding" in yaml.safe_dump(data).splitlines()[duplicate.line - 1]
    assert "versions[0].created_by" in text and "Field required" in text
    assert "surprise" in text and "Extra inputs are not permitted" in text
    assert "Value error," not in text


def test_edited_published_version_is_detected() -> None:
    data = sample_document().model_dump(mode="json")
    data["versions"][0]["definition"]["title"] = "Edited by hand"
    with pytest.raises(RubricFormatError) as exc:
        load_rubric(yaml.safe_dump(data), "yaml")
    [issue] = exc.value.issues
    assert issue.path == "versions[0].content_hash"
    assert issue.message.startswith("does not match the definition of version 1")


def test_document_consistency_checks() -> None:
    data = sample_document().model_dump(mode="json")
    data["versions"].append(dict(data["versions"][0]))
    with pytest.raises(
        RubricFormatError, match=r"numbers must be unique and ascending, got \[1, 1\]"
    ):
        load_rubric(yaml.safe_dump(data), "yaml")
    data = sample_document().model_dump(mode="json") | {"mode": "preference"}
    with pytest.raises(
        RubricFormatError,
        match=r"draft\.mode \(line \d+\): 'rubric' differs from mode 'preference'",
    ):
        load_rubric(yaml.safe_dump(data), "yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a list\n", "expected a mapping of fields, got list"),
        ("format_version: 2\nname: x\nmode: rubric\n", "unsupported format_version 2"),
        ("name: x\nmode: rubric\n", "unsupported format_version None"),
    ],
)
def test_top_level_problems(text: str, message: str) -> None:
    with pytest.raises(RubricFormatError, match=message):
        load_rubric(text, "yaml")


def test_safe_load_refuses_python_tags() -> None:
    text = "format_version: 1\nname: !!python/object/apply:os.system ['true']\nmode: rubric\n"
    with pytest.raises(RubricFormatError, match="invalid YAML"):
        load_rubric(text, "yaml")


def test_unknown_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        dump_rubric(sample_document(), "toml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown format"):
        load_rubric("{}", "toml")  # type: ignore[arg-type]
