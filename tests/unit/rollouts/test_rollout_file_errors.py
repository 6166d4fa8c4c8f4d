"""Whole-file problems: each kind of bad file is refused with its own message."""

from __future__ import annotations

import gzip
import io
import json

import pytest

from app.rollouts.parsing import FileRejected, ParsedLine, ParseOptions, iter_parse

GOOD_LINE = {"input": [{"role": "user", "content": "hi"}], "response": "yo"}


def rejection(parse, data: bytes | str, **kwargs) -> FileRejected:
    with pytest.raises(FileRejected) as caught:
        parse(data, **kwargs)
    return caught.value


def test_empty_file(parse):
    assert str(rejection(parse, b"")) == "the file is empty"


def test_file_with_only_a_byte_order_mark_is_empty(parse):
    assert str(rejection(parse, b"\xef\xbb\xbf")) == "the file is empty"


def test_file_with_only_blank_lines(parse):
    message = "the file contains only blank lines: there are no rollouts in it"
    assert str(rejection(parse, "\n  \n\r\n")) == message
    assert str(rejection(parse, "\n\n", format="studio")) == message


def test_binary_file(parse):
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00"
    assert str(rejection(parse, png)) == (
        "the file is not text (it contains binary data near byte 8); expected a JSONL or CSV "
        "file saved as UTF-8 text"
    )


def test_binary_file_without_zero_bytes(parse):
    noise = bytes(range(1, 8)) * 50
    assert str(rejection(parse, noise)).startswith("the file is not text")


def test_gzip_file(parse):
    data = gzip.compress(json.dumps(GOOD_LINE).encode())
    assert str(rejection(parse, data)).startswith("the file is gzip-compressed; decompress it")


def test_zip_or_excel_file(parse):
    message = str(rejection(parse, b"PK\x03\x04\x14\x00\x06\x00rest"))
    assert message.startswith("the file is a ZIP archive or an Excel workbook")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_file(parse, encoding):
    data = (json.dumps(GOOD_LINE) + "\n").encode(encoding)
    rejected = rejection(parse, data)
    assert str(rejected) == (
        "line 1: the file is encoded as UTF-16; expected UTF-8. Save it again as UTF-8 (in Excel "
        "choose “CSV UTF-8”; on the command line `iconv -f UTF-16 -t UTF-8 in.jsonl > "
        "out.jsonl`)"
    )
    assert rejected.line == 1


def test_latin1_bytes_name_the_line_and_ask_for_utf8(parse):
    good = json.dumps(GOOD_LINE) + "\n"
    bad = '{"input": [{"role": "user", "content": "café"}], "response": "x"}\n'
    data = (good + good).encode() + bad.encode("latin-1")
    items = iter_parse(io.BytesIO(data))
    assert isinstance(next(items), ParsedLine)  # earlier lines were fine
    assert isinstance(next(items), ParsedLine)
    with pytest.raises(FileRejected) as caught:
        next(items)
    assert str(caught.value) == (
        "line 3 is not valid UTF-8 text (byte 0xE9 at column 44); expected UTF-8. The file looks "
        "like Latin-1 / Windows-1252: save it again as UTF-8 (in Excel choose “CSV UTF-8”; on "
        "the command line `iconv -f WINDOWS-1252 -t UTF-8 in.jsonl > out.jsonl`)"
    )
    assert caught.value.line == 3


def test_invalid_utf8_that_is_not_latin1(parse):
    data = b'{"input": "\x81\x8d\x8f\x90\x9d"}\n'
    assert str(rejection(parse, data, format="studio")) == (
        "line 1 is not valid UTF-8 text (byte 0x81 at column 12); expected UTF-8. Save the file "
        "again as UTF-8."
    )


def test_utf8_bom_is_accepted(parse):
    items = parse(b"\xef\xbb\xbf" + (json.dumps(GOOD_LINE) + "\n").encode())
    assert isinstance(items[0], ParsedLine) and items[0].records[0].response == "yo"


def test_json_array_instead_of_jsonl(parse):
    message = (
        "the file is a JSON array; expected one JSON object per line (JSONL) — convert with "
        "`jq -c '.[]'`"
    )
    assert str(rejection(parse, json.dumps([GOOD_LINE, GOOD_LINE]))) == message
    pretty = json.dumps([GOOD_LINE], indent=2)
    assert str(rejection(parse, "\n" + pretty, format="nova")) == message


def test_pretty_printed_object_instead_of_jsonl(parse):
    assert str(rejection(parse, json.dumps(GOOD_LINE, indent=2), format="studio")) == (
        "the file is a JSON object spread over several lines; expected one JSON object per line "
        "(JSONL) — convert with `jq -c .`"
    )


def test_whole_file_problems_in_the_first_block_raise_from_the_call():
    # The worker can refuse the upload before starting to store anything.
    with pytest.raises(FileRejected):
        iter_parse(io.BytesIO(b"[1, 2]"))


def test_file_over_the_size_limit_is_refused_before_reading(parse):
    data = (json.dumps(GOOD_LINE) + "\n").encode() * 100
    assert str(rejection(parse, data, max_file_bytes=1024)) == (
        "the file is larger than the 1 KiB limit for one import (it is 6.3 KiB); split it into "
        "smaller files, for example `split -l 100000 rollouts.jsonl part_`"
    )


def test_size_limit_counts_from_the_current_position():
    data = b"x" * 5000 + (json.dumps(GOOD_LINE) + "\n").encode()
    stream = io.BytesIO(data)
    stream.seek(5000)
    items = list(iter_parse(stream, ParseOptions(max_file_bytes=1024)))
    assert len(items) == 1 and isinstance(items[0], ParsedLine)


# ---------------------------------------------------------------------------- CSV


def test_csv_missing_mapped_column(parse):
    rejected = rejection(
        parse,
        "id,Question,Answer\n1,q,a\n",
        format="csv",
        csv_mapping={"input": "Prompt", "response": "Answer"},
    )
    assert str(rejected) == (
        "the CSV file has no column 'Prompt' (chosen for 'input'); its columns are: id, "
        "Question, Answer"
    )


def test_csv_without_input_and_response_columns(parse):
    assert str(rejection(parse, "a,b\n1,2\n", filename="x.csv")) == (
        "the CSV file needs a column for 'input' and 'response'; its columns are: a, b — choose "
        "which column holds each field"
    )


def test_csv_without_response_column(parse):
    message = str(rejection(parse, "input,b\n1,2\n", filename="x.csv"))
    assert message.startswith("the CSV file needs a column for 'response'; its columns are")


def test_csv_mapping_with_unknown_field(parse):
    rejected = rejection(parse, "q,a\n1,2\n", format="csv", csv_mapping={"prompt": "q"})
    assert str(rejected) == (
        "the CSV column mapping names an unknown field 'prompt'; the fields are: id, system, "
        "input, target_document, references, reference_answer, response, model, checkpoint, "
        "step, group, metadata"
    )


def test_csv_mapping_to_a_duplicated_column(parse):
    rejected = rejection(parse, "q,q,a\n1,2,3\n", format="csv", csv_mapping={"input": "q"})
    assert str(rejected) == (
        "the CSV file has 2 columns named 'q' (chosen for 'input'); rename them so each name is "
        "used once"
    )


def test_csv_with_header_only(parse):
    message = "the CSV file has a header row but no data rows"
    assert str(rejection(parse, "input,response\n", format="csv")) == message
    assert str(rejection(parse, "input,response\n,\n\n", format="csv")) == message


def test_csv_format_chosen_for_a_jsonl_file(parse):
    assert str(rejection(parse, json.dumps(GOOD_LINE) + "\n", format="csv")) == (
        "the file looks like JSONL (its first line is a JSON object), not CSV; import it as "
        "JSONL or let the format be detected"
    )


def test_csv_quote_never_closed(parse):
    data = 'input,response\nq,a\n"runaway,b\n' + "more text\n" * 200
    items = iter_parse(io.BytesIO(data.encode()), ParseOptions(format="csv", max_line_bytes=512))
    assert isinstance(next(items), ParsedLine)
    with pytest.raises(FileRejected) as caught:
        next(items)
    assert str(caught.value) == (
        "line 3: the row is over the 512 bytes limit for one rollout; a quoted value is probably "
        "never closed (check the quotes in this row)"
    )
