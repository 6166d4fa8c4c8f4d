"""Per-line problems: each names its line and field, says what was expected, and parsing goes on."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.rollouts.parsing import ParsedLine, Problem

USER_HI = [{"role": "user", "content": "hi"}]
GOOD = {"input": USER_HI, "response": "yo"}
NOVA_GOOD = {"messages": [*USER_HI, {"role": "assistant", "content": "yo"}]}


def problems(items: list[Any]) -> list[str]:
    return [str(item) for item in items if isinstance(item, Problem)]


def line_text(row: Any) -> str:
    return json.dumps(row) + "\n"


def studio_problems(parse, row: dict[str, Any]) -> list[str]:
    return problems(parse(line_text(row), format="studio"))


# ---------------------------------------------------------------------------- JSON syntax


def test_invalid_json_names_the_column_and_parsing_goes_on(parse):
    data = line_text(GOOD) + '{"input": [] "response": "x"}\n' + line_text(GOOD)
    items = parse(data)
    assert problems(items) == [
        "line 2: not valid JSON at column 14: expected a comma or a closing bracket"
    ]
    assert [item.line_no for item in items if isinstance(item, ParsedLine)] == [1, 3]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "{'input': []}",
            "not valid JSON at column 2: expected a field name in double quotes "
            "(JSON allows no single quotes and no comma before a closing bracket)",
        ),
        (
            '{"input": [], }',
            "not valid JSON at column 15: expected a field name in double quotes "
            "(JSON allows no single quotes and no comma before a closing bracket)",
        ),
        (
            '{"a": 1} {"b": 2}',
            "not valid JSON at column 10: unexpected text after the end of the "
            "JSON object (two objects on one line?)",
        ),
        ('{"a": tru}', "not valid JSON at column 7: expected a value"),
        (
            '{"a": "x\ty"}',
            "not valid JSON at column 9: a text value contains a raw line break or "
            "tab (write it as \\n or \\t)",
        ),
    ],
)
def test_invalid_json_reasons_are_explained(parse, text, message):
    assert problems(parse(line_text(GOOD) + text + "\n")) == [f"line 2: {message}"]


def test_truncated_last_line(parse):
    data = line_text(GOOD) + '{"input": [{"role": "user", "content": "hel'
    assert problems(parse(data)) == [
        "line 2: the last line is truncated: the file ends before the JSON object is closed (was "
        "the file cut off while copying or uploading?)"
    ]


def test_truncated_last_line_without_closing_brace(parse):
    data = line_text(GOOD) + '{"input": [], "response": "x"'
    assert "truncated" in problems(parse(data))[0]


def test_unclosed_object_in_the_middle_is_not_called_truncated(parse):
    data = line_text(GOOD) + '{"input": [], "response": "x"\n' + line_text(GOOD)
    assert problems(parse(data)) == [
        "line 2: not valid JSON at column 30: the line ends before the JSON object is closed (is "
        "a value split over two lines?)"
    ]


def test_line_that_is_not_an_object(parse):
    data = line_text(GOOD) + "42\n" + '["a"]\n' + '"text"\n'
    assert problems(parse(data)) == [
        "line 2: expected a JSON object ({...}) on each line, got the number 42",
        "line 3: expected a JSON object ({...}) on each line, got a list",
        "line 4: expected a JSON object ({...}) on each line, got the text 'text'",
    ]


def test_nan_is_not_json(parse):
    data = line_text(GOOD) + '{"input": [], "response": "x", "metadata": {"score": NaN}}\n'
    assert problems(parse(data)) == [
        "line 2: not valid JSON: NaN is not a JSON value (write null for a missing number)"
    ]


def test_line_too_long_is_skipped_and_the_next_line_is_read(parse):
    long_row = {**GOOD, "response": "x" * 3000}
    items = parse(line_text(GOOD) + line_text(long_row) + line_text(GOOD), max_line_bytes=1024)
    assert problems(items) == [
        "line 2: the line is 3 KiB long, over the 1 KiB limit for one rollout; it was skipped"
    ]
    assert [item.line_no for item in items if isinstance(item, ParsedLine)] == [1, 3]


def test_last_line_too_long_without_newline(parse):
    items = parse(line_text(GOOD) + '{"response": "' + "x" * 5000, max_line_bytes=1024)
    assert problems(items) == [
        "line 2: the line is 4.9 KiB long, over the 1 KiB limit for one rollout; it was skipped"
    ]


def test_nesting_too_deep_names_the_field(parse):
    deep: Any = "bottom"
    for _ in range(40):
        deep = {"level": deep}
    data = line_text(GOOD) + line_text({**GOOD, "metadata": deep})
    assert problems(parse(data)) == ["line 2, field 'metadata': nested more than 32 levels deep"]


def test_nesting_at_the_limit_is_accepted(parse):
    deep: Any = 1
    for _ in range(30):  # the line's object is level 1, metadata level 2, ...: 32 in all
        deep = [deep]
    items = parse(line_text({**GOOD, "metadata": {"deep": deep}}))
    assert problems(items) == []


def test_nesting_deep_enough_to_break_the_json_reader(parse):
    text = '{"metadata": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
    assert problems(parse(line_text(GOOD) + text, format="studio")) == [
        "line 2: nested more than 32 levels deep"
    ]


def test_broken_surrogate_escape(parse):
    text = '{"input": [{"role": "user", "content": "\\ud83d"}], "response": "x"}\n'
    assert problems(parse(text)) == [
        "line 1, field 'input': contains a broken character escape (half of a \\uXXXX "
        "surrogate pair); export the file again as UTF-8"
    ]


def test_escaped_surrogate_pair_is_fine(parse):
    items = parse('{"input": [{"role": "user", "content": "\\ud83d\\ude00"}], "response": "x"}\n')
    assert items[0].records[0].input_messages[0]["content"] == "\U0001f600"


# ---------------------------------------------------------------------------- Studio fields


def test_bad_role_on_line_12(parse):
    rows = [GOOD] * 11 + [{"input": [*USER_HI, {"role": "bot", "content": "x"}], "response": "y"}]
    data = "".join(line_text(row) for row in rows)
    assert problems(parse(data)) == [
        "line 12, field 'input[1].role': expected one of system, user, assistant, tool, got 'bot'"
    ]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            {"response": "x"},
            [
                "line 1, field 'input': missing: every rollout needs 'input', the list of messages "
                "sent to the model"
            ],
        ),
        (
            {"input": USER_HI},
            [
                "line 1, field 'response': missing: every rollout needs a 'response' (or "
                "'responses' with two answers for a preference pair)"
            ],
        ),
        (
            {"input": [{"content": "x"}], "response": "y"},
            [
                "line 1, field 'input[0].role': missing: every message needs a 'role' (system, "
                "user, assistant or tool)"
            ],
        ),
        (
            {"input": [{"role": "user"}], "response": "y"},
            ["line 1, field 'input[0].content': missing: every message needs a 'content' text"],
        ),
        (
            {"input": [], "response": "y"},
            ["line 1, field 'input': expected at least one message, got an empty list"],
        ),
        (
            {"input": "hello", "response": "y"},
            ["line 1, field 'input': expected a list, got the text 'hello'"],
        ),
        (
            {"input": ["hello"], "response": "y"},
            [
                'line 1, field \'input[0]\': expected a message like {"role": "user", "content": '
                "\"...\"}, got the text 'hello'"
            ],
        ),
        (
            {"input": [{"role": "user", "content": 5}], "response": "y"},
            ["line 1, field 'input[0].content': expected text, got the number 5"],
        ),
        (
            {**GOOD, "model": 3},
            ["line 1, field 'model': expected text, got the number 3"],
        ),
        (
            {**GOOD, "checkpoint": ["a"]},
            ["line 1, field 'checkpoint': expected text, got the list [\"a\"]"],
        ),
        (
            {**GOOD, "metadata": "notes"},
            ["line 1, field 'metadata': expected an object, got the text 'notes'"],
        ),
        (
            {**GOOD, "target_document": {"text": "x"}},
            ['line 1, field \'target_document\': expected text, got the object {"text": "x"}'],
        ),
        (
            {**GOOD, "id": True},
            ["line 1, field 'id': expected text or a whole number, got true"],
        ),
        (
            {**GOOD, "id": ""},
            ["line 1, field 'id': expected a non-empty id"],
        ),
        (
            {**GOOD, "group": "g" * 201},
            ["line 1, field 'group': expected at most 200 characters, got 201"],
        ),
        (
            {"input": USER_HI, "response": None},
            ["line 1, field 'response': expected the model's answer as text, got null"],
        ),
        (
            {**GOOD, "references": "just text"},
            ["line 1, field 'references': expected a list, got the text 'just text'"],
        ),
        (
            {**GOOD, "references": [5]},
            [
                "line 1, field 'references[0]': expected text, or an object with a 'title' and a "
                "'text', got the number 5"
            ],
        ),
        (
            {**GOOD, "references": [{"title": "T"}]},
            ["line 1, field 'references[0].text': missing: a reference needs a 'text'"],
        ),
        (
            {**GOOD, "references": [{"text": "T", "url": "u"}]},
            [
                "line 1, field 'references[0].url': unknown field in a reference; the allowed "
                "fields are: title, text"
            ],
        ),
    ],
)
def test_studio_field_problems(parse, row, expected):
    assert studio_problems(parse, row) == expected


@pytest.mark.parametrize(
    ("step", "shown"),
    [(-1, "the number -1"), (1.5, "the number 1.5"), ("3", "the text '3'"), (True, "true")],
)
def test_step_must_be_a_non_negative_whole_number(parse, step, shown):
    assert studio_problems(parse, {**GOOD, "step": step}) == [
        f"line 1, field 'step': expected a whole number 0 or more, got {shown}"
    ]


def test_unknown_field_suggests_the_right_name(parse):
    assert studio_problems(parse, {"input": USER_HI, "respone": "x", "response": "y"}) == [
        "line 1, field 'respone': unknown field (did you mean 'response'?); the allowed fields "
        "are: id, input, target_document, references, reference_answer, response, responses, "
        "model, checkpoint, step, group, metadata"
    ]


def test_unknown_field_uses_common_synonyms(parse):
    found = studio_problems(parse, {**GOOD, "prompt": "x"})
    assert found[0].startswith("line 1, field 'prompt': unknown field (did you mean 'input'?)")


def test_messages_field_in_studio_format_points_to_chat_formats(parse):
    found = studio_problems(parse, {**GOOD, "messages": []})
    assert found[0].startswith(
        "line 1, field 'messages': unknown field (this looks like a Nova or OpenAI chat row: "
        "import the file in that format"
    )


def test_unknown_field_in_a_message(parse):
    row = {"input": [{"role": "user", "content": "x", "lang": "en"}], "response": "y"}
    assert studio_problems(parse, row) == [
        "line 1, field 'input[0].lang': unknown field in a message; the allowed fields are: "
        "role, content, name, tool_call_id, tool_calls"
    ]


def test_response_and_responses_together(parse):
    assert studio_problems(parse, {**GOOD, "responses": ["a", "b"]}) == [
        "line 1, field 'responses': give either 'response' or 'responses' (a preference pair), "
        "not both"
    ]


@pytest.mark.parametrize("answers", [["a"], ["a", "b", "c"]])
def test_preference_pair_needs_exactly_two_responses(parse, answers):
    assert studio_problems(parse, {"input": USER_HI, "responses": answers}) == [
        f"line 1, field 'responses': a preference pair needs exactly 2 responses, got "
        f"{len(answers)}"
    ]


def test_preference_pair_with_identical_responses(parse):
    assert studio_problems(parse, {"input": USER_HI, "responses": ["same", "same"]}) == [
        "line 1, field 'responses': the two responses of the preference pair are identical"
    ]


def test_several_problems_on_one_line_are_all_reported(parse):
    row = {"input": [{"role": "bot", "content": "x"}], "response": "y", "step": -2, "extra": 1}
    assert sorted(studio_problems(parse, row)) == sorted(
        [
            "line 1, field 'input[0].role': expected one of system, user, assistant, tool, got "
            "'bot'",
            "line 1, field 'step': expected a whole number 0 or more, got the number -2",
            "line 1, field 'extra': unknown field; the allowed fields are: id, input, "
            "target_document, references, reference_answer, response, responses, model, "
            "checkpoint, step, group, metadata",
        ]
    )


def test_problems_on_one_line_are_capped(parse):
    row = {**GOOD, **{f"unknown_{i}": i for i in range(25)}}
    found = studio_problems(parse, row)
    assert len(found) == 11
    assert found[-1] == "line 1: and 15 more problems on this line"


# ---------------------------------------------------------------------------- Nova / OpenAI


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            {"id": "1"},
            "line 1, field 'messages': missing: every row needs 'messages', the conversation "
            "ending with the model's answer",
        ),
        (
            {"messages": "hello"},
            "line 1, field 'messages': expected a list of messages, got the text 'hello'",
        ),
        (
            {"messages": []},
            "line 1, field 'messages': expected the prompt messages followed by the model's "
            "answer, got an empty list",
        ),
        (
            {"messages": [{"role": "user", "content": "q"}]},
            "line 1, field 'messages[0].role': the last message must be the model's answer (role "
            "'assistant'), got 'user'; a row without an answer is a training prompt, not a "
            "rollout",
        ),
        (
            {"messages": [{"role": "assistant", "content": "a"}]},
            "line 1, field 'messages': expected the prompt messages followed by the model's "
            "answer, got only the answer",
        ),
        (
            {
                "messages": [
                    {"role": "robot", "content": "q"},
                    {"role": "assistant", "content": "a"},
                ]
            },
            "line 1, field 'messages[0].role': expected one of system, user, assistant, tool, "
            "nova_assistant, got 'robot'",
        ),
        (
            {
                "messages": [
                    {"role": ["user"], "content": "q"},
                    {"role": "assistant", "content": "a"},
                ]
            },
            "line 1, field 'messages[0].role': expected one of system, user, assistant, tool, "
            'nova_assistant, got ["user"]',
        ),
        (
            {"messages": [{"content": "q"}, {"role": "assistant", "content": "a"}]},
            "line 1, field 'messages[0].role': missing: every message needs a 'role' (system, "
            "user, assistant, tool, nova_assistant)",
        ),
        (
            {"messages": [{"role": "user"}, {"role": "assistant", "content": "a"}]},
            "line 1, field 'messages[0].content': missing: every message needs a 'content' text",
        ),
        (
            {"messages": ["q", {"role": "assistant", "content": "a"}]},
            'line 1, field \'messages[0]\': expected a message like {"role": "user", "content": '
            "\"...\"}, got the text 'q'",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {}}]},
                    {"role": "assistant", "content": "a"},
                ]
            },
            "line 1, field 'messages[0].content[0]': only text content can be imported, got a "
            "part of type 'image_url'",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": 5}]},
                    {"role": "assistant", "content": "a"},
                ]
            },
            "line 1, field 'messages[0].content[0].text': expected text, got the number 5",
        ),
        (
            {"messages": [{"role": "user", "content": 7}, {"role": "assistant", "content": "a"}]},
            "line 1, field 'messages[0].content': expected text, got the number 7",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "q", "lang": "en"},
                    {"role": "assistant", "content": "a"},
                ]
            },
            "line 1, field 'messages[0].lang': unknown field in a message; the allowed fields "
            "are: content, name, role, tool_call_id, tool_calls",
        ),
        ({**NOVA_GOOD, "id": ""}, "line 1, field 'id': expected a non-empty id"),
        (
            {**NOVA_GOOD, "id": 1.5},
            "line 1, field 'id': expected text or a whole number, got the number 1.5",
        ),
        (
            {**NOVA_GOOD, "step": -3},
            "line 1, field 'step': expected a whole number 0 or more, got the number -3",
        ),
        ({**NOVA_GOOD, "model": 4}, "line 1, field 'model': expected text, got the number 4"),
        (
            {**NOVA_GOOD, "metadata": [1]},
            "line 1, field 'metadata': expected an object, got the list [1]",
        ),
    ],
)
def test_nova_problems(parse, row, expected):
    assert problems(parse(line_text(row), format="nova")) == [expected]


def test_openai_problems_mention_completion(parse):
    row = {"messages": [{"role": "user", "content": "q"}]}
    assert problems(parse(line_text(row), format="openai")) == [
        "line 1, field 'messages[0].role': the last message must be the model's answer (role "
        "'assistant') (or give the answer in 'completion'), got 'user'; a row without an answer "
        "is a training prompt, not a rollout"
    ]


def test_openai_completion_must_not_be_null(parse):
    row = {"messages": [{"role": "user", "content": "q"}], "completion": None}
    assert problems(parse(line_text(row), format="openai")) == [
        "line 1, field 'completion': expected the model's answer as text, got null"
    ]


def test_openai_does_not_accept_nova_roles(parse):
    row = {
        "messages": [{"role": "user", "content": "q"}, {"role": "nova_assistant", "content": "a"}]
    }
    assert problems(parse(line_text(row), format="openai")) == [
        "line 1, field 'messages[1].role': expected one of system, developer, user, assistant, "
        "tool, got 'nova_assistant'"
    ]


# ---------------------------------------------------------------------------- CSV rows


def test_csv_problems_name_the_row_and_the_column(parse):
    data = (
        "Prompt,Answer,Step\n"
        "q1,a1,1\n"
        "q2,a2,abc\n"
        ",a3,2\n"
        '"[{""role"": ""bot"", ""content"": ""x""}]",a4,\n'
        "q5,a5,-1\n"
    )
    items = parse(
        data, format="csv", csv_mapping={"input": "Prompt", "response": "Answer", "step": "Step"}
    )
    assert problems(items) == [
        "line 3, field 'Step': expected a whole number 0 or more, got the text 'abc'",
        "line 4, field 'Prompt': the cell is empty; expected the prompt sent to the model",
        "line 5, field 'Prompt[0].role': expected one of system, user, assistant, tool, got 'bot'",
        "line 6, field 'Step': expected a whole number 0 or more, got the number -1",
    ]
    assert [item.line_no for item in items if isinstance(item, ParsedLine)] == [2]


def test_csv_row_with_too_many_values(parse):
    items = parse("input,response\nq,a,extra\nq2,a2\n", format="csv")
    assert problems(items) == [
        "line 2: the row has 3 values but the header has 2 columns (a separator inside a value "
        "that is not quoted?)"
    ]
    assert len([item for item in items if isinstance(item, ParsedLine)]) == 1


def test_csv_row_with_bad_quoting(parse):
    items = parse('input,response\n"q"x,a\nq2,a2\n', format="csv")
    assert problems(items) == [
        "line 2: this row is not valid CSV: a quoted value is followed by more text before the "
        'next separator (write "" for a quote inside a quoted value)'
    ]
    assert [item.line_no for item in items if isinstance(item, ParsedLine)] == [3]


def test_csv_metadata_cell_must_be_a_json_object(parse):
    items = parse("input,response,metadata\nq,a,not json\n", format="csv")
    assert problems(items) == [
        'line 2, field \'metadata\': expected a JSON object like {"key": "value"}, got the text '
        "'not json'"
    ]


def test_csv_row_too_long_is_reported_against_its_row(parse):
    data = "input,response\nq1,a1\nq2," + "x" * 3000 + "\nq3,a3\n"
    items = parse(data, format="csv", max_line_bytes=1024)
    assert problems(items) == [
        "line 3: the line is 2.9 KiB long, over the 1 KiB limit for one rollout; it was skipped"
    ]
    assert [item.line_no for item in items if isinstance(item, ParsedLine)] == [2, 4]
