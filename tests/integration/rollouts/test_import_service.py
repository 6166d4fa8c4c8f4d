"""Imports through the service and the worker: every format, every kind of bad file (with its
exact message and nothing stored), idempotent re-imports, conflicts, skip_invalid, resuming."""

from __future__ import annotations

import gzip
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.audit.models import AuditEvent
from app.core.clock import utcnow
from app.core.config import Settings
from app.rollouts import bulk, jobs
from app.rollouts import service as rollout_service
from app.rollouts.models import Rollout, RolloutImport, RolloutImportProblem, RolloutPair
from tests.integration.rollouts.conftest import (
    ImportFile,
    World,
    jsonl,
    pair_count,
    rollout_count,
    run_worker_once,
    studio_row,
)
from tests.support.db import backend


def problems_of(session: Session, job: RolloutImport) -> list[tuple[int | None, str | None, str]]:
    rows = rollout_service.list_problems(session, job.id or 0, limit=1000)
    return [(p.line, p.field, p.message) for p in rows]


# ---------------------------------------------------------------------------- formats


def test_studio_jsonl_is_imported_with_every_field(
    session: Session, import_file: ImportFile, world: World
) -> None:
    row = studio_row(
        1,
        target_document="MASTER SERVICES AGREEMENT ... 7.2 Liability is unlimited.",
        references=[{"title": "Playbook", "text": "Cap liability."}, "plain reference"],
        reference_answer={"clauses": ["7.2"]},
        response=[{"clause": "7.2", "comment": "uncapped"}],
        metadata={"batch": 2},
    )
    job = import_file(jsonl([row, studio_row(2)]))
    assert (job.status, job.inserted, job.duplicates, job.conflicts) == ("done", 2, 0, 0)
    assert job.format == "studio"
    assert job.message == "imported 2 rollouts"
    stored = session.exec(select(Rollout).where(Rollout.external_id == "r-1")).one()
    assert stored.project_id == world.pid
    assert stored.input_messages == row["input"]
    assert stored.target_document == row["target_document"]
    assert stored.reference_documents == [
        {"title": "Playbook", "text": "Cap liability."},
        {"title": "", "text": "plain reference"},
    ]
    assert stored.reference_answer == {"clauses": ["7.2"]}
    assert json.loads(stored.response) == [{"clause": "7.2", "comment": "uncapped"}]
    assert (stored.model, stored.checkpoint, stored.step, stored.group_key) == (
        "policy-a",
        "ckpt-1",
        100,
        "g-0",
    )
    assert stored.metadata_ == {"batch": 2}
    assert (stored.source_file, stored.source_line, stored.import_id) == (
        "rollouts.jsonl",
        1,
        job.id,
    )
    assert len(stored.content_hash) == 64


def test_nova_rows_are_imported(session: Session, import_file: ImportFile, world: World) -> None:
    rows = [
        {
            "id": "123",
            "messages": [
                {"role": "system", "content": "You are a math tutor"},
                {"role": "user", "content": "Solve: 2x + 5 = 13"},
                {"role": "assistant", "content": "2x = 8, so x = 4"},
            ],
            "reference_answer": {"solution": "x = 4"},
            "my_custom_field": "custom_value",
        },
        {
            "id": "124",
            "messages": [
                {"role": "user", "content": "Security team?"},
                {"role": "nova_assistant", "content": [{"type": "text", "text": "No."}]},
            ],
            "metadata": {"reference_answer": {"compliant": "No"}},
        },
    ]
    job = import_file(jsonl(rows), "nova.jsonl")
    assert (job.status, job.format, job.inserted) == ("done", "nova", 2)
    first = session.exec(select(Rollout).where(Rollout.external_id == "123")).one()
    assert first.response == "2x = 8, so x = 4"
    assert [m["role"] for m in first.input_messages] == ["system", "user"]
    assert first.reference_answer == {"solution": "x = 4"}
    assert first.metadata_ == {"my_custom_field": "custom_value"}
    second = session.exec(select(Rollout).where(Rollout.external_id == "124")).one()
    assert (second.response, second.reference_answer) == ("No.", {"compliant": "No"})


def test_openai_chat_rows_are_imported(session: Session, import_file: ImportFile) -> None:
    rows = [
        {
            "messages": [
                {"role": "developer", "content": "Answer briefly."},
                {"role": "user", "content": "Capital of France?"},
                {"role": "assistant", "content": "Paris."},
            ],
            "model": "gpt-4o-mini",
        },
        {"messages": [{"role": "user", "content": "Capital of Italy?"}], "completion": "Rome."},
    ]
    job = import_file(jsonl(rows), "chat.jsonl", format="openai")
    assert (job.status, job.format, job.inserted) == ("done", "openai", 2)
    responses = set(session.exec(select(Rollout.response)))
    assert responses == {"Paris.", "Rome."}
    derived = session.exec(select(Rollout).where(Rollout.response == "Rome.")).one()
    assert derived.external_id.startswith("sha256:")
    assert derived.group_key and derived.group_key.startswith("auto:")


def test_csv_with_a_column_mapping_is_imported(session: Session, import_file: ImportFile) -> None:
    data = (
        b"id,Question,Answer,step,reviewer\n"
        b'q-1,What is 2 + 2?,4,10,ana\nq-2,"Name a prime number, please.","7",10,ben\n'
    )
    job = import_file(data, "sheet.csv", csv_mapping={"input": "Question", "response": "Answer"})
    assert (job.status, job.format, job.inserted) == ("done", "csv", 2)
    stored = session.exec(select(Rollout).where(Rollout.external_id == "q-2")).one()
    assert stored.input_messages == [{"role": "user", "content": "Name a prime number, please."}]
    assert (stored.response, stored.step, stored.metadata_) == ("7", 10, {"reviewer": "ben"})


def test_a_preference_pair_creates_two_rollouts_and_a_pair(
    session: Session, import_file: ImportFile, world: World
) -> None:
    row = {
        "id": "pair-9",
        "input": [{"role": "user", "content": "Write a haiku about rain."}],
        "responses": ["Soft rain on the roof", "Rain is water falling."],
    }
    job = import_file(jsonl([row]))
    assert (job.status, job.inserted, job.pairs) == ("done", 2, 1)
    pair = session.exec(select(RolloutPair)).one()
    a = session.get(Rollout, pair.rollout_a_id)
    b = session.get(Rollout, pair.rollout_b_id)
    assert a is not None and b is not None
    assert (a.external_id, a.response) == ("pair-9:a", "Soft rain on the roof")
    assert (b.external_id, b.response) == ("pair-9:b", "Rain is water falling.")
    again = import_file(jsonl([row]))
    assert (again.inserted, again.duplicates, again.pairs) == (0, 2, 0)
    assert pair_count(session, world.pid) == 1


# ---------------------------------------------------------------------------- idempotency


def test_importing_the_same_file_twice_adds_nothing(
    session: Session, import_file: ImportFile, world: World
) -> None:
    data = jsonl(
        [studio_row(n) for n in range(30)]
        + [{"input": [{"role": "user", "content": "x"}], "response": "no id"}]
    )
    first = import_file(data)
    assert (first.inserted, first.duplicates) == (31, 0)
    second = import_file(data)
    assert (second.status, second.inserted, second.duplicates, second.conflicts) == (
        "done",
        0,
        31,
        0,
    )
    assert second.message == "imported 0 rollouts; 31 rollouts already imported before (skipped)"
    assert rollout_count(session, world.pid) == 31


def test_same_id_with_other_content_is_a_conflict_and_is_not_overwritten(
    session: Session, import_file: ImportFile, world: World
) -> None:
    import_file(jsonl([studio_row(1), studio_row(2)]), "first.jsonl")
    changed = studio_row(2, response="A different answer.")
    job = import_file(jsonl([studio_row(1), changed, studio_row(3)]), "second.jsonl")
    assert (job.status, job.inserted, job.duplicates, job.conflicts) == ("done", 1, 1, 1)
    assert problems_of(session, job) == [
        (
            2,
            "id",
            "a rollout with the id 'r-2' already exists with different content (from "
            "first.jsonl, line 2); this line was not imported and nothing was overwritten",
        )
    ]
    kept = session.exec(select(Rollout).where(Rollout.external_id == "r-2")).one()
    assert kept.response == studio_row(2)["response"]
    assert "1 conflict: an id already used with different content" in job.message


def test_a_repeated_id_inside_one_file_is_a_conflict(
    session: Session, import_file: ImportFile, world: World
) -> None:
    rows = [studio_row(1), studio_row(1), studio_row(1, response="changed")]
    job = import_file(jsonl(rows))
    assert (job.inserted, job.duplicates, job.repeats, job.conflicts) == (1, 1, 1, 1)
    assert problems_of(session, job) == [
        (2, "id", "repeats line 1 of this file (the same id 'r-1' and the same content): skipped"),
        (
            3,
            "id",
            "the id 'r-1' is also used by line 1 of rollouts.jsonl with different content; this "
            "line was not imported and nothing was overwritten",
        ),
    ]
    # Said as a repeat of this file, not as something imported before.
    assert "already imported before" not in job.message
    assert "1 line repeating an earlier line of this file" in job.message


def test_a_repeated_id_across_batches_is_found(
    session: Session, import_file: ImportFile, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "BATCH_LINES", 2)
    rows = [studio_row(n) for n in range(5)] + [studio_row(0, response="changed"), studio_row(1)]
    job = import_file(jsonl(rows))
    assert (job.inserted, job.duplicates, job.repeats, job.conflicts) == (5, 1, 1, 1)
    assert problems_of(session, job)[0][0] == 6
    # Line 7 repeats line 2, stored by an earlier batch of the same import.
    assert problems_of(session, job)[1] == (
        7,
        "id",
        "repeats line 2 of this file (the same id 'r-1' and the same content): skipped",
    )
    assert "already imported before" not in job.message


# ---------------------------------------------------------------------------- bad lines


BAD_LINES = [studio_row(1), {"input": [], "response": "x"}, studio_row(3), "not json {"]


def bad_file() -> bytes:
    lines = [json.dumps(row) if isinstance(row, dict) else row for row in BAD_LINES]
    return ("\n".join(lines) + "\n").encode()


def test_a_file_with_bad_lines_is_refused_whole_with_every_problem(
    session: Session, import_file: ImportFile, world: World
) -> None:
    job = import_file(bad_file())
    assert job.status == "rejected"
    assert job.message == (
        "2 lines of 4 have problems, so nothing was imported. Fix them and upload the file "
        "again, or import it again choosing to skip invalid lines."
    )
    assert (job.invalid, job.inserted) == (2, 0)
    assert problems_of(session, job) == [
        (2, "input", "expected at least one message, got an empty list"),
        (4, None, "not valid JSON at column 1: expected a value"),
    ]
    assert rollout_count(session, world.pid) == 0


def test_skip_invalid_imports_the_valid_lines_and_records_the_choice(
    session: Session, import_file: ImportFile, world: World
) -> None:
    job = import_file(bad_file(), skip_invalid=True)
    assert (job.status, job.inserted, job.invalid) == ("done", 2, 2)
    assert job.message == "imported 2 rollouts; 2 invalid lines skipped as chosen"
    assert [p[0] for p in problems_of(session, job)] == [2, 4]
    assert rollout_count(session, world.pid) == 2
    events = session.exec(
        select(AuditEvent)
        .where(AuditEvent.object_type == "rollout_import", AuditEvent.object_id == str(job.id))
        .order_by(AuditEvent.id)
    ).all()
    assert [e.action for e in events] == ["rollout.import.create", "rollout.import.done"]
    assert events[0].details["skip_invalid"] is True
    assert "skipping invalid lines" in events[0].summary
    assert events[1].details["skip_invalid"] is True
    assert events[1].details["invalid_lines"] == 2
    assert events[1].actor_label == world.engineer.email


def test_text_the_database_cannot_store_is_a_problem_of_its_line(
    session: Session, import_file: ImportFile, world: World
) -> None:
    data = jsonl(
        [
            studio_row(1, response="bad \u0000 byte"),
            studio_row(2, metadata={"x": float("inf")}),
            studio_row(3, metadata={"note": "\\u0000 is how JSON writes NUL"}),
        ]
    ).replace(b"Infinity", b"1e999")
    job = import_file(data)
    assert job.status == "rejected"
    assert problems_of(session, job) == [
        (1, "response", bulk.NUL_MESSAGE),
        (2, "metadata", "contains a number too large to store as JSON (it reads as infinity)"),
    ]
    assert rollout_count(session, world.pid) == 0
    skipped = import_file(data, skip_invalid=True)
    assert (skipped.inserted, skipped.invalid) == (1, 2)
    kept = session.exec(select(Rollout).where(Rollout.external_id == "r-3")).one()
    assert kept.metadata_ == {"note": "\\u0000 is how JSON writes NUL"}  # text, not a NUL


def test_a_file_where_no_line_is_valid_is_refused_even_when_skipping(
    session: Session, import_file: ImportFile, world: World
) -> None:
    job = import_file(b'{"input": [], "response": "x"}\n', skip_invalid=True)
    assert job.status == "rejected"
    assert job.message == "no line of the file can be imported, so nothing was imported."


# ---------------------------------------------------------------------------- bad files


def _zip_bytes() -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.jsonl", "{}")
    return buffer.getvalue()


REFUSED_AT_UPLOAD = [
    ("empty", b"", "x.jsonl", "the file is empty"),
    (
        "blank",
        b"\n\n   \n",
        "x.jsonl",
        "the file contains only blank lines: there are no rollouts in it",
    ),
    (
        "binary",
        b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00" + bytes(range(256)) * 8,
        "x.jsonl",
        "the file is not text (it contains binary data near byte 7); expected a JSONL or CSV "
        "file saved as UTF-8 text",
    ),
    (
        "gzip",
        gzip.compress(jsonl([studio_row(1)])),
        "x.jsonl.gz",
        "the file is gzip-compressed; decompress it first (for example `gunzip "
        "rollouts.jsonl.gz`) and upload the .jsonl file",
    ),
    (
        "zip",
        _zip_bytes(),
        "x.xlsx",
        "the file is a ZIP archive or an Excel workbook; save the sheet as “CSV UTF-8” or "
        "extract the .jsonl file, and upload that",
    ),
    (
        "utf16",
        jsonl([studio_row(1)]).decode().encode("utf-16"),
        "x.jsonl",
        "line 1: the file is encoded as UTF-16; expected UTF-8. Save it again as UTF-8 (in Excel "
        "choose “CSV UTF-8”; on the command line `iconv -f UTF-16 -t UTF-8 in.jsonl > "
        "out.jsonl`)",
    ),
    (
        "json array",
        json.dumps([studio_row(1), studio_row(2)]).encode(),
        "x.json",
        "the file is a JSON array; expected one JSON object per line (JSONL) — convert with "
        "`jq -c '.[]'`",
    ),
    (
        "pretty json",
        json.dumps(studio_row(1), indent=2).encode(),
        "x.json",
        "the file is a JSON object spread over several lines; expected one JSON object per line "
        "(JSONL) — convert with `jq -c .`",
    ),
    (
        "unknown format",
        b'{"a": 1, "b": 2}\n',
        "x.jsonl",
        "could not recognise the rollout format: line 1 has none of the fields 'input' and "
        "'response' (Studio format) or 'messages' (Nova or OpenAI chat format); its fields are: "
        "a, b",
    ),
    (
        "csv without the columns",
        b"a,b\n1,2\n",
        "x.csv",
        "the CSV file needs a column for 'input' and 'response'; its columns are: a, b — choose "
        "which column holds each field",
    ),
]


@pytest.mark.parametrize(
    ("kind", "data", "filename", "message"),
    REFUSED_AT_UPLOAD,
    ids=[c[0] for c in REFUSED_AT_UPLOAD],
)
def test_bad_files_are_refused_at_upload_with_a_specific_message(
    session: Session,
    settings: Settings,
    world: World,
    kind: str,
    data: bytes,
    filename: str,
    message: str,
) -> None:
    with pytest.raises(rollout_service.ImportRefused) as refused:
        rollout_service.create_import(
            session,
            settings,
            world.project,
            world.engineer,
            filename=filename,
            source=io.BytesIO(data),
        )
    assert refused.value.message == message
    assert refused.value.details == [
        {"line": refused.value.details[0]["line"], "field": None, "message": message}
    ]  # type: ignore[index]
    assert session.exec(select(RolloutImport)).all() == []
    assert rollout_count(session, world.pid) == 0
    assert not any(settings.upload_dir.glob("*")), "the refused upload was not deleted"


REFUSED_BY_THE_WORKER = [
    (
        "latin-1 on a later line",
        jsonl([studio_row(n) for n in range(3)])
        + '{"input": [{"role": "user", "content": "Café"}], "response": "x"}\n'.encode("cp1252"),
        "x.jsonl",
        "the file cannot be imported: line 4 is not valid UTF-8 text (byte 0xE9 at column 44); "
        "expected UTF-8. The file looks like Latin-1 / Windows-1252: save it again as UTF-8 (in "
        "Excel choose “CSV UTF-8”; on the command line `iconv -f WINDOWS-1252 -t UTF-8 in.jsonl "
        "> out.jsonl`)",
    ),
    (
        "csv header only",
        b"input,response\n",
        "x.csv",
        "the file cannot be imported: the CSV file has a header row but no data rows",
    ),
]


@pytest.mark.parametrize(
    ("kind", "data", "filename", "message"),
    REFUSED_BY_THE_WORKER,
    ids=[c[0] for c in REFUSED_BY_THE_WORKER],
)
def test_bad_files_found_later_are_refused_whole(
    session: Session,
    import_file: ImportFile,
    world: World,
    settings: Settings,
    kind: str,
    data: bytes,
    filename: str,
    message: str,
) -> None:
    job = import_file(data, filename, skip_invalid=True)
    assert (job.status, job.message, job.inserted) == ("rejected", message, 0)
    problems = rollout_service.list_problems(session, job.id or 0)
    assert [p.kind for p in problems] == ["file"]
    assert rollout_count(session, world.pid) == 0
    assert not any(settings.upload_dir.glob("*")), "the finished upload was not deleted"


def test_a_truncated_last_line_is_reported(session: Session, import_file: ImportFile) -> None:
    data = jsonl([studio_row(1)]) + json.dumps(studio_row(2)).encode()[:40]
    job = import_file(data)
    assert job.status == "rejected"
    assert problems_of(session, job) == [
        (
            2,
            None,
            "the last line is truncated: the file ends before the JSON object is closed (was the "
            "file cut off while copying or uploading?)",
        )
    ]


def test_too_long_and_too_deep_lines_are_reported(
    session: Session, import_file: ImportFile, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep: object = "x"
    for _ in range(40):
        deep = [deep]
    rows = [studio_row(1, metadata={"deep": deep}), studio_row(2, response="y" * 3000)]

    real_options = jobs._ImportRunner.options

    def small_lines(self: jobs._ImportRunner) -> object:
        options = real_options(self)
        return type(options)(format=options.format, max_line_bytes=2048)

    monkeypatch.setattr(jobs._ImportRunner, "options", small_lines)
    job = import_file(jsonl(rows))
    assert job.status == "rejected"
    assert problems_of(session, job) == [
        (1, "metadata", "nested more than 32 levels deep"),
        (2, None, "the line is 3.2 KiB long, over the 2 KiB limit for one rollout; it was skipped"),
    ]


def test_a_file_over_the_upload_limit_is_refused_while_it_is_stored(
    session: Session, settings: Settings, world: World
) -> None:
    settings.max_upload_bytes = 1000
    with pytest.raises(rollout_service.ImportRefused) as refused:
        rollout_service.create_import(
            session,
            settings,
            world.project,
            world.engineer,
            filename="big.jsonl",
            source=io.BytesIO(jsonl([studio_row(n) for n in range(50)])),
        )
    assert refused.value.message.startswith(
        "the file is larger than the 1000 bytes limit for one import; split it"
    )
    assert not any(settings.upload_dir.glob("*"))


# ---------------------------------------------------------------------------- CSV mapping


def test_a_browser_csv_upload_waits_for_its_columns(
    session: Session, settings: Settings, engine: Engine, world: World
) -> None:
    data = b"Question;Answer;Step\nWhat is 2 + 2?;4;5\n"
    job = rollout_service.create_import(
        session,
        settings,
        world.project,
        world.engineer,
        filename="sheet.csv",
        source=io.BytesIO(data),
        browser_mapping=True,
    )
    assert job.status == "awaiting_mapping"
    assert job.options["csv_header"] == ["Question", "Answer", "Step"]
    assert rollout_service.suggested_mapping(["Question", "Answer", "Step"]) == {
        "input": "Question",
        "response": "Answer",
        "step": "Step",
    }
    assert jobs.claim_import(engine, "w", 60) is None, "a job waiting for its columns was claimed"
    with pytest.raises(rollout_service.InvalidInput) as wrong:
        rollout_service.set_csv_mapping(session, job, world.engineer, {"input": "Nope"})
    assert wrong.value.message == (
        "the CSV file has no column 'Nope' (chosen for 'input'); its columns are: Question, "
        "Answer, Step"
    )
    rollout_service.set_csv_mapping(
        session, job, world.engineer, {"input": "Question", "response": "Answer", "step": "Step"}
    )
    done = run_worker_once(engine, settings, job.id or 0)
    assert (done.status, done.inserted) == ("done", 1)
    stored = session.exec(select(Rollout)).one()
    assert (stored.response, stored.step) == ("4", 5)


def test_cancelling_an_import_that_waits_deletes_its_file(
    session: Session, settings: Settings, world: World
) -> None:
    job = rollout_service.create_import(
        session,
        settings,
        world.project,
        world.engineer,
        filename="sheet.csv",
        source=io.BytesIO(b"input,response\nq,a\n"),
        browser_mapping=True,
    )
    assert any(settings.upload_dir.glob("*"))
    rollout_service.cancel_import(session, job, world.engineer)
    assert job.status == "cancelled"
    assert not any(settings.upload_dir.glob("*"))
    with pytest.raises(rollout_service.Conflict):
        rollout_service.cancel_import(session, job, world.engineer)


# ---------------------------------------------------------------------------- durability


class Crash(BaseException):
    """Stands for the worker process dying: not an Exception, so nothing catches it."""


def test_an_import_resumes_after_a_crash_without_duplicates(
    session: Session,
    settings: Settings,
    engine: Engine,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(jobs, "BATCH_LINES", 10)
    rows = [studio_row(n) for n in range(45)] + [studio_row(3, response="changed")]
    job = rollout_service.create_import(
        session,
        settings,
        world.project,
        world.engineer,
        filename="big.jsonl",
        source=io.BytesIO(jsonl(rows)),
    )
    real_store = jobs.store_batch
    calls = {"n": 0}

    def crash_on_third_batch(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 3:
            raise Crash()
        return real_store(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jobs, "store_batch", crash_on_third_batch)
    assert jobs.claim_import(engine, "worker-1", 60) == job.id
    with pytest.raises(Crash):
        jobs.process_import(engine, settings, job.id or 0, "worker-1")

    with Session(engine) as fresh:
        halfway = fresh.get(RolloutImport, job.id)
        assert halfway is not None
        assert (halfway.status, halfway.inserted, halfway.resume_line) == ("importing", 20, 20)
    assert rollout_count(session, world.pid) == 20
    # The lease has not expired: nobody else may take the import over yet.
    assert jobs.claim_import(engine, "worker-2", 60) is None
    with engine.begin() as conn:
        conn.execute(
            update(RolloutImport.__table__)  # type: ignore[arg-type]
            .where(RolloutImport.__table__.c.id == job.id)  # type: ignore[attr-defined]
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    assert jobs.claim_import(engine, "worker-2", 60) == job.id
    finished = jobs.process_import(engine, settings, job.id or 0, "worker-2")
    assert finished is not None
    assert (finished.status, finished.inserted, finished.duplicates, finished.conflicts) == (
        "done",
        45,
        0,
        1,
    )
    assert finished.attempts == 2
    assert rollout_count(session, world.pid) == 45
    conflicts = session.exec(
        select(RolloutImportProblem).where(RolloutImportProblem.import_id == job.id)
    ).all()
    assert [(p.kind, p.line) for p in conflicts] == [("conflict", 46)]


def test_a_worker_that_lost_its_lease_stops_without_writing(
    session: Session, settings: Settings, engine: Engine, world: World
) -> None:
    job = rollout_service.create_import(
        session,
        settings,
        world.project,
        world.engineer,
        filename="a.jsonl",
        source=io.BytesIO(jsonl([studio_row(1)])),
    )
    assert jobs.claim_import(engine, "worker-1", 60) == job.id
    with engine.begin() as conn:
        conn.execute(
            update(RolloutImport.__table__)  # type: ignore[arg-type]
            .where(RolloutImport.__table__.c.id == job.id)  # type: ignore[attr-defined]
            .values(lease_owner="worker-2")
        )
    assert jobs.process_import(engine, settings, job.id or 0, "worker-1") is not None
    assert rollout_count(session, world.pid) == 0


def test_an_import_interrupted_too_often_is_given_up(
    session: Session, settings: Settings, engine: Engine, world: World
) -> None:
    job = rollout_service.create_import(
        session,
        settings,
        world.project,
        world.engineer,
        filename="a.jsonl",
        source=io.BytesIO(jsonl([studio_row(1)])),
    )
    with engine.begin() as conn:
        conn.execute(
            update(RolloutImport.__table__)  # type: ignore[arg-type]
            .where(RolloutImport.__table__.c.id == job.id)  # type: ignore[attr-defined]
            .values(attempts=jobs.MAX_ATTEMPTS)
        )
    done = run_worker_once(engine, settings, job.id or 0)
    assert done.status == "failed"
    assert done.message.startswith("the import was interrupted 3 times and was given up")


def test_an_unexpected_error_fails_the_import_with_a_message(
    session: Session,
    settings: Settings,
    engine: Engine,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(jobs, "store_batch", broken)
    job = rollout_service.create_import(
        session,
        settings,
        world.project,
        world.engineer,
        filename="a.jsonl",
        source=io.BytesIO(jsonl([studio_row(1)])),
    )
    done = run_worker_once(engine, settings, job.id or 0)
    assert done.status == "failed"
    assert done.message.startswith(
        "the import stopped because of an internal error (RuntimeError: disk on fire)"
    )
    assert done.lease_owner is None


def test_the_worker_loop_runs_queued_imports(
    session: Session, settings: Settings, engine: Engine, world: World
) -> None:
    from app.worker import run_worker

    job = rollout_service.create_import(
        session,
        settings,
        world.project,
        world.engineer,
        filename="a.jsonl",
        source=io.BytesIO(jsonl([studio_row(1), studio_row(2)])),
    )
    run_worker(engine, settings, once=True)
    session.refresh(job)
    assert (job.status, job.inserted) == ("done", 2)


def test_rows_a_concurrent_import_stored_meanwhile_are_not_duplicated_or_overwritten(
    session: Session,
    import_file: ImportFile,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import_file(jsonl([studio_row(1), studio_row(2)]), "other.jsonl")
    real_lookup = bulk._lookup
    calls = {"n": 0}

    def stale_first_lookup(*args: object, **kwargs: object) -> object:
        # The first lookup misses what another import stored just before our insert.
        calls["n"] += 1
        return {} if calls["n"] == 1 else real_lookup(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(bulk, "_lookup", stale_first_lookup)
    rows = [studio_row(1), studio_row(2, response="changed"), studio_row(3)]
    job = import_file(jsonl(rows), "mine.jsonl")
    assert (job.status, job.inserted, job.duplicates, job.conflicts) == ("done", 1, 1, 1)
    assert rollout_count(session, world.pid) == 3
    kept = session.exec(select(Rollout).where(Rollout.external_id == "r-2")).one()
    assert kept.response == studio_row(2)["response"]
    assert [p[0] for p in problems_of(session, job)] == [2]


@pytest.mark.skipif(backend() != "postgres", reason="PostgreSQL's planner")
def test_a_large_import_refreshes_stale_statistics_so_id_lookups_use_the_index(
    engine: Engine, import_file: ImportFile, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "BATCH_LINES", 100)
    monkeypatch.setattr(jobs, "ANALYZE_AFTER_ROWS", 200)
    calls: list[int] = []
    real = jobs.refresh_statistics_if_stale

    def counted(session: Session, rows: int) -> bool:
        analyzed = real(session, rows)
        if analyzed:
            calls.append(rows)
        return analyzed

    monkeypatch.setattr(jobs, "refresh_statistics_if_stale", counted)
    import_file(jsonl([studio_row(n) for n in range(3000)]))
    assert calls and calls[0] == 200, calls
    query = bulk.select(bulk._rollouts.c.id).where(
        bulk._rollouts.c.project_id == world.pid,
        bulk._rollouts.c.external_id.in_([f"r-{n}" for n in range(100, 105)]),
    )
    compiled = query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        estimate = conn.exec_driver_sql(
            "SELECT reltuples FROM pg_class WHERE oid = 'rollout'::regclass"
        ).scalar()
        plan = conn.exec_driver_sql("EXPLAIN " + str(compiled)).all()
    assert estimate is not None and estimate >= 3000 / 4  # re-checked at each doubling
    text = "\n".join(row[0] for row in plan)
    assert "uq_rollout_project_id_external_id" in text, text
