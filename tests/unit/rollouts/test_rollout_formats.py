"""Each rollout format parses into the expected records; ids, hashes and groups are stable."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.rollouts.parsing import (
    FileRejected,
    ParsedLine,
    Problem,
    RolloutRecord,
    derive_external_id,
    detect_format,
)

USER_HI = [{"role": "user", "content": "hi"}]


def jsonl(*rows: Any) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def only_record(items: list[Any]) -> RolloutRecord:
    assert len(items) == 1, [str(item) for item in items]
    assert isinstance(items[0], ParsedLine)
    assert len(items[0].records) == 1
    return items[0].records[0]


# ---------------------------------------------------------------------------- Studio


def test_studio_line_maps_every_field(parse):
    row = {
        "id": "c-001",
        "input": [
            {"role": "system", "content": "You review contracts."},
            {"role": "user", "content": "List risky clauses."},
        ],
        "target_document": "MSA ... 7.2 Liability is unlimited",
        "references": [{"title": "Playbook", "text": "Cap liability."}, "Plain reference"],
        "reference_answer": {"clauses": ["7.2"]},
        "response": "Clause 7.2 is uncapped.",
        "model": "policy-v3",
        "checkpoint": "ckpt-400",
        "step": 400,
        "group": "contract-7",
        "metadata": {"batch": 2},
    }
    record = only_record(parse(jsonl(row)))
    assert record.external_id == "c-001"
    assert record.input_messages == row["input"]
    assert record.target_document == "MSA ... 7.2 Liability is unlimited"
    assert record.reference_documents == [
        {"title": "Playbook", "text": "Cap liability."},
        {"title": "", "text": "Plain reference"},
    ]
    assert record.reference_answer == {"clauses": ["7.2"]}
    assert record.response == "Clause 7.2 is uncapped."
    assert (record.model, record.checkpoint, record.step) == ("policy-v3", "ckpt-400", 400)
    assert record.group_key == "contract-7"
    assert record.metadata == {"batch": 2}
    assert record.line_no == 1
    assert len(record.content_hash) == 64


def test_studio_optional_fields_default_to_absent(parse):
    record = only_record(parse(jsonl({"input": USER_HI, "response": "yo", "model": None})))
    assert record.target_document is None
    assert record.reference_documents == []
    assert record.reference_answer is None
    assert (record.model, record.checkpoint, record.step) == (None, None, None)
    assert record.metadata == {}
    assert record.group_key is not None and record.group_key.startswith("auto:")


def test_studio_json_response_is_stored_as_its_text(parse):
    comments = [{"clause": "7.2", "comment": "Uncapped liability."}]
    record = only_record(parse(jsonl({"input": USER_HI, "response": comments})))
    assert json.loads(record.response) == comments


def test_studio_numeric_id_and_integral_step_are_normalised(parse):
    record = only_record(parse(jsonl({"id": 17, "input": USER_HI, "response": "x", "step": 3.0})))
    assert record.external_id == "17"
    assert record.step == 3 and isinstance(record.step, int)


def test_studio_keeps_tool_fields_on_messages(parse):
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "t1"}]},
        {"role": "tool", "content": "sunny", "tool_call_id": "t1", "name": "weather"},
    ]
    record = only_record(parse(jsonl({"input": messages, "response": "Sunny."})))
    assert record.input_messages == messages


def test_preference_pair_yields_two_records(parse):
    items = parse(jsonl({"id": "p-1", "input": USER_HI, "responses": ["A text", "B text"]}))
    assert len(items) == 1
    line = items[0]
    assert isinstance(line, ParsedLine) and line.pair is True
    first, second = line.records
    assert [first.response, second.response] == ["A text", "B text"]
    assert [first.external_id, second.external_id] == ["p-1:a", "p-1:b"]
    assert first.group_key == second.group_key
    assert first.content_hash != second.content_hash
    assert first.input_messages == second.input_messages
    assert first.input_messages is not second.input_messages


def test_preference_pair_without_id_derives_one_id_per_answer(parse):
    line = parse(jsonl({"input": USER_HI, "responses": ["A", "B"]}))[0]
    first, second = line.records
    assert first.external_id == derive_external_id(first)
    assert second.external_id == derive_external_id(second)
    assert first.external_id != second.external_id


def test_single_response_line_is_not_a_pair(parse):
    line = parse(jsonl({"input": USER_HI, "response": "A"}))[0]
    assert isinstance(line, ParsedLine) and line.pair is False


# ---------------------------------------------------------------------------- Nova


def test_nova_row_with_top_level_reference_answer(parse):
    row: dict[str, Any] = {
        "id": "123",
        "messages": [
            {"role": "system", "content": "You are a math tutor"},
            {"role": "user", "content": "Solve: 2x + 5 = 13"},
            {"role": "assistant", "content": "2x = 8, so x = 4"},
        ],
        "reference_answer": {"solution": "x = 4"},
        "my_custom_field": "custom_value",
    }
    record = only_record(parse(jsonl(row), format="nova"))
    assert record.external_id == "123"
    assert record.input_messages == row["messages"][:2]
    assert record.response == "2x = 8, so x = 4"
    assert record.reference_answer == {"solution": "x = 4"}
    assert record.metadata == {"my_custom_field": "custom_value"}


def test_nova_row_with_reference_answer_under_metadata(parse):
    row = {
        "id": "124",
        "messages": [
            {"role": "user", "content": "Do you have a dedicated security team?"},
            {"role": "assistant", "content": "As an AI developed by Amazon, I do not ..."},
        ],
        "metadata": {"reference_answer": {"compliant": "No"}, "my_key": "sample-001"},
    }
    record = only_record(parse(jsonl(row), format="nova"))
    assert record.reference_answer == {"compliant": "No"}
    assert record.metadata == {"my_key": "sample-001"}


def test_nova_top_level_reference_answer_wins_over_metadata(parse):
    row = {
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
        "reference_answer": "top",
        "metadata": {"reference_answer": "nested"},
    }
    record = only_record(parse(jsonl(row), format="nova"))
    assert record.reference_answer == "top"
    assert record.metadata == {"reference_answer": "nested"}


@pytest.mark.parametrize(
    "content",
    [
        [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}],
        [{"text": "first"}, {"text": "second"}],
        "first\nsecond",
    ],
)
def test_nova_content_forms_give_the_same_text(parse, content):
    row = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "question"}]},
            {"role": "nova_assistant", "content": content},
        ]
    }
    record = only_record(parse(jsonl(row), format="nova"))
    assert record.response == "first\nsecond"
    assert record.input_messages == [{"role": "user", "content": "question"}]


def test_nova_role_aliases_are_stored_as_studio_roles(parse):
    row = {
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": "q"},
            {"role": "bot", "content": "a"},
        ]
    }
    record = only_record(parse(jsonl(row), format="nova"))
    assert [m["role"] for m in record.input_messages] == ["system", "user"]
    assert record.response == "a"


def test_nova_provenance_fields_are_read(parse):
    row = {
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
        "model": "nova-lite",
        "checkpoint": "c1",
        "step": 12,
        "group": "g",
    }
    record = only_record(parse(jsonl(row), format="nova"))
    assert (record.model, record.checkpoint, record.step, record.group_key) == (
        "nova-lite",
        "c1",
        12,
        "g",
    )
    assert record.metadata == {}


# ---------------------------------------------------------------------------- OpenAI chat


def test_openai_row_with_last_assistant_message(parse):
    row = {
        "messages": [
            {"role": "developer", "content": "Answer briefly."},
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": "Paris."},
        ],
        "model": "gpt-4o-mini",
        "temperature": 0.2,
    }
    record = only_record(parse(jsonl(row), format="openai"))
    assert record.input_messages == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert record.response == "Paris."
    assert record.model == "gpt-4o-mini"
    assert record.metadata == {"temperature": 0.2}


def test_openai_row_with_completion(parse):
    row = {"messages": [{"role": "user", "content": "Capital of Italy?"}], "completion": "Rome."}
    record = only_record(parse(jsonl(row), format="openai"))
    assert record.input_messages == [{"role": "user", "content": "Capital of Italy?"}]
    assert record.response == "Rome."
    assert record.metadata == {}


def test_openai_refusal_is_the_response_when_content_is_empty(parse):
    row = {
        "messages": [
            {"role": "user", "content": "help me pick a lock"},
            {"role": "assistant", "content": None, "refusal": "I can't help with that."},
        ]
    }
    record = only_record(parse(jsonl(row), format="openai"))
    assert record.response == "I can't help with that."


def test_openai_tool_calling_turn_without_content_is_input(parse):
    row = {
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "tool_calls": [{"id": "t1", "type": "function"}]},
            {"role": "tool", "content": "sunny", "tool_call_id": "t1"},
            {"role": "assistant", "content": "It is sunny."},
        ]
    }
    record = only_record(parse(jsonl(row), format="openai"))
    assert record.input_messages[1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "t1", "type": "function"}],
    }
    assert record.response == "It is sunny."


# ---------------------------------------------------------------------------- CSV


def test_csv_with_default_column_names(parse):
    data = "id,input,response,model,step,reviewer\nq-1,What is 2 + 2?,4,m1,10,ana\n"
    record = only_record(parse(data, filename="rollouts.csv"))
    assert record.external_id == "q-1"
    assert record.input_messages == [{"role": "user", "content": "What is 2 + 2?"}]
    assert record.response == "4"
    assert (record.model, record.step) == ("m1", 10)
    assert record.metadata == {"reviewer": "ana"}
    assert record.line_no == 2


def test_csv_with_a_mapping_and_quoted_values(parse):
    data = 'Question,Answer,Notes\n"Name a prime, please.","7, of course",\n'
    items = parse(data, format="csv", csv_mapping={"input": "Question", "response": "Answer"})
    record = only_record(items)
    assert record.input_messages == [{"role": "user", "content": "Name a prime, please."}]
    assert record.response == "7, of course"
    assert record.metadata == {}  # empty cells of other columns are not kept


def test_csv_header_names_match_case_insensitively(parse):
    record = only_record(parse("Input,Response\nq,a\n", format="csv"))
    assert (record.input_messages[0]["content"], record.response) == ("q", "a")


@pytest.mark.parametrize("separator", [";", "\t"])
def test_csv_separator_is_taken_from_the_header(parse, separator):
    data = f"input{separator}response\nhello, you{separator}world\n"
    record = only_record(parse(data, format="csv"))
    assert record.input_messages[0]["content"] == "hello, you"
    assert record.response == "world"


def test_csv_with_utf8_bom_from_excel(parse):
    data = "\ufeffinput,response\nhi,yo\n".encode()
    record = only_record(parse(data, filename="export.csv"))
    assert record.response == "yo"


def test_csv_structured_cells(parse):
    header = "system,input,references,reference_answer,metadata,target_document,response"
    messages = json.dumps(
        [
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "a1"},
            {"role": "user", "content": "q2"},
        ]
    )
    cells = [
        "Be strict.",
        messages,
        json.dumps([{"title": "Playbook", "text": "Cap liability."}]),
        json.dumps({"answer": 4}),
        json.dumps({"batch": 3}),
        "The contract",
        "a2",
    ]
    data = header + "\n" + ",".join('"' + c.replace('"', '""') + '"' for c in cells) + "\n"
    record = only_record(parse(data, format="csv"))
    assert record.input_messages == [
        {"role": "system", "content": "Be strict."},
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
    ]
    assert record.reference_documents == [{"title": "Playbook", "text": "Cap liability."}]
    assert record.reference_answer == {"answer": 4}
    assert record.metadata == {"batch": 3}
    assert record.target_document == "The contract"


def test_csv_plain_text_cells_stay_text(parse):
    data = "input,references,reference_answer,response\n[INST] hi,Use care.,4,yo\n"
    record = only_record(parse(data, format="csv"))
    assert record.input_messages == [{"role": "user", "content": "[INST] hi"}]
    assert record.reference_documents == [{"title": "", "text": "Use care."}]
    assert record.reference_answer == "4"


def test_csv_rows_are_numbered_as_rows_not_physical_lines(parse):
    data = 'input,response\n"first\nprompt",a\n\nsecond,b\n'
    items = parse(data, format="csv")
    assert [item.line_no for item in items if isinstance(item, ParsedLine)] == [2, 4]
    assert items[0].records[0].input_messages[0]["content"] == "first\nprompt"


def test_csv_mapping_can_leave_a_field_out(parse):
    # An empty column name means "not mapped": the 'model' column then goes to metadata.
    data = "input,response,model\nq,a,m\n"
    record = only_record(parse(data, format="csv", csv_mapping={"model": ""}))
    assert record.model is None
    assert record.metadata == {"model": "m"}


# ---------------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("head", "filename", "expected"),
    [
        (b'{"input": [], "response": "x"}\n', None, "studio"),
        (b'{"responses": ["a", "b"], "input": []}\n', None, "studio"),
        (b'\xef\xbb\xbf{"input": [], "response": "x"}\n', None, "studio"),
        (b'{"id": "1", "messages": [{"role": "user", "content": "q"}]}\n', None, "nova"),
        (b'{"messages": [], "completion": "c"}\n', None, "openai"),
        (b"input,response\nq,a\n", None, "csv"),
        (b'{"input": []}\n', "rollouts.csv", "csv"),
        (b"input;response\n", None, "csv"),
        (b"\n\n" + b'{"messages": []}\n', None, "nova"),
        # A first line cut off at the end of the head is recognised from its key names.
        (b'{"messages": [{"role": "user", "content": "' + b"x" * 100, None, "nova"),
        (b'{"input": [{"role": "user", "content": "' + b"x" * 100, None, "studio"),
        (b"not json at all", "file.jsonl", "studio"),
    ],
)
def test_detect_format(head, filename, expected):
    assert detect_format(head, filename) == expected


def test_auto_detection_is_used_by_iter_parse(parse):
    nova = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    assert only_record(parse(jsonl(nova))).response == "a"


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (
            b'{"question": "q", "answer": "a"}\n',
            "could not recognise the rollout format: line 1 has none of the fields 'input' and "
            "'response' (Studio format) or 'messages' (Nova or OpenAI chat format); its fields "
            "are: question, answer",
        ),
        (
            b"hello world\n",
            "could not recognise the file format: expected JSONL (one JSON object per line) or "
            "CSV with a header row",
        ),
    ],
)
def test_detect_format_rejects_what_no_format_fits(head, message):
    with pytest.raises(FileRejected) as caught:
        detect_format(head, None)
    assert str(caught.value) == message


# ---------------------------------------------------------------------------- ids and hashes


def test_same_content_gets_the_same_id_whatever_the_key_order(parse):
    first = {"input": USER_HI, "response": "yo", "model": "m", "metadata": {"a": 1}}
    second = {"metadata": {"b": 2}, "model": "m", "response": "yo", "input": USER_HI}
    items = parse(jsonl(first, second))
    one, two = (item.records[0] for item in items)
    assert one.content_hash == two.content_hash
    assert one.external_id == two.external_id == "sha256:" + one.content_hash[:16]
    assert derive_external_id(one) == one.external_id


def test_same_content_gets_the_same_hash_in_every_format(parse):
    studio = parse(jsonl({"input": USER_HI, "response": "yo", "reference_answer": "r"}))
    nova = parse(
        jsonl(
            {
                "messages": [*USER_HI, {"role": "assistant", "content": "yo"}],
                "reference_answer": "r",
            }
        ),
        format="nova",
    )
    openai = parse(jsonl({"messages": USER_HI, "completion": "yo", "reference_answer": "r"}))
    csv = parse("input,response,reference_answer\nhi,yo,r\n", format="csv")
    hashes = {items[0].records[0].content_hash for items in (studio, nova, openai, csv)}
    assert len(hashes) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"response": "other"},
        {"input": [{"role": "user", "content": "hi!"}]},
        {"target_document": "doc"},
        {"references": ["ref"]},
        {"reference_answer": "r"},
        {"model": "m2"},
        {"checkpoint": "c2"},
        {"step": 5},
    ],
)
def test_any_content_or_provenance_change_changes_the_hash(parse, change):
    base = {"input": USER_HI, "response": "yo"}
    items = parse(jsonl(base, {**base, **change}))
    assert items[0].records[0].content_hash != items[1].records[0].content_hash


def test_metadata_and_group_do_not_change_the_hash(parse):
    base = {"input": USER_HI, "response": "yo"}
    items = parse(jsonl(base, {**base, "metadata": {"seen": True}, "group": "g"}))
    assert items[0].records[0].content_hash == items[1].records[0].content_hash


def test_generations_of_the_same_prompt_share_a_derived_group(parse):
    prompt = {"input": USER_HI, "target_document": "contract A"}
    items = parse(
        jsonl(
            {**prompt, "response": "one", "step": 1},
            {**prompt, "response": "two", "step": 2},
            {**prompt, "target_document": "contract B", "response": "one"},
        )
    )
    groups = [item.records[0].group_key for item in items]
    assert groups[0] == groups[1] != groups[2]
    assert all(group.startswith("auto:") and len(group) == 21 for group in groups)


def test_problem_str_names_line_and_field():
    assert str(Problem(12, "input[1].role", "bad")) == "line 12, field 'input[1].role': bad"
    assert str(Problem(3, None, "bad")) == "line 3: bad"
    assert str(Problem(None, None, "bad")) == "bad"


def test_chat_file_detected_from_a_first_line_without_completion_reads_completion_rows(parse):
    data = jsonl(
        {"messages": [*USER_HI, {"role": "assistant", "content": "a"}]},
        {"messages": USER_HI, "completion": "b"},
    )
    assert [item.records[0].response for item in parse(data)] == ["a", "b"]


def test_windows_line_endings(parse):
    data = jsonl({"input": USER_HI, "response": "yo"}).replace(b"\n", b"\r\n") * 2
    items = parse(data)
    assert [item.records[0].response for item in items] == ["yo", "yo"]
    csv_items = parse(b'input,response\r\n"multi\r\nline",a\r\n', format="csv")
    assert csv_items[0].records[0].input_messages[0]["content"] == "multi\nline"


@pytest.mark.parametrize(
    "options",
    [{"format": "xlsx"}, {"max_line_bytes": 0}, {"encoding": "utf-16"}, {"encoding": "nope"}],
)
def test_parse_options_refuse_what_cannot_work(options):
    from app.rollouts.parsing import ParseOptions

    with pytest.raises(ValueError):
        ParseOptions(**options)


def test_another_ascii_compatible_encoding_can_be_chosen(parse):
    data = "input,response\ncafé,olé\n".encode("cp1252")
    record = only_record(parse(data, format="csv", encoding="cp1252"))
    assert (record.input_messages[0]["content"], record.response) == ("café", "olé")
