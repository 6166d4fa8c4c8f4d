"""The file formats people exchange with the studio, each with its JSON Schema and its document:
the single list that the API (`GET /api/v1/formats`), the command line (`rubric-studio formats`)
and the tests read. Each schema is the one its import checks with: a schema file the import
validates against, or the pydantic model the import parses with."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.core.schema_check import load_schema, problems_with, schema_problems, validator_for

APP = Path(__file__).resolve().parent.parent


class Shape(StrEnum):
    document = "document"  # one JSON (or YAML) value per file
    lines = "lines"  # JSON Lines: the schema describes one line


@dataclass(frozen=True)
class FileFormat:
    name: str
    title: str
    shape: Shape
    doc: str  # path under docs/
    used_by: str
    schema_file: Path | None = None  # the schema file its import validates with, or
    model: tuple[str, str] | None = None  # (module, class) of the model its import parses with

    def schema(self) -> dict[str, Any]:
        return _schema_of(self.name)


def _model_schema(import_path: str, attribute: str, title: str) -> dict[str, Any]:
    import importlib

    model = getattr(importlib.import_module(import_path), attribute)
    schema: dict[str, Any] = model.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "title": title}


FORMATS: dict[str, FileFormat] = {
    f.name: f
    for f in (
        FileFormat(
            "rollouts",
            "Rollout file (Studio JSONL; one rollout per line)",
            Shape.lines,
            "formats/rollouts.md",
            "rollout imports (browser, POST .../imports, `rubric-studio import`)",
            schema_file=APP / "rollouts" / "rollout.schema.json",
        ),
        FileFormat(
            "rubric",
            "Rubric file (YAML or JSON; a rubric with its versions, sign-offs and draft)",
            Shape.document,
            "formats/rubric.md",
            "rubric import/export (POST .../rubrics/import, `rubric-studio rubrics import`)",
            model=("app.rubrics.serialization", "RubricDocument"),
        ),
        FileFormat(
            "labels",
            "Label file (JSONL, one expert label per line; CSV has the same fields)",
            Shape.lines,
            "formats/labels.md",
            "label import/export (POST .../labels/import, `rubric-studio labels import`)",
            schema_file=APP / "labels" / "label.schema.json",
        ),
        FileFormat(
            "verdicts",
            "Verdict file (JSONL, one judge verdict per line)",
            Shape.lines,
            "formats/verdicts.md",
            "verdict import (POST .../judge-runs/import, `rubric-studio judge import-verdicts`)",
            schema_file=APP / "judging" / "verdict.schema.json",
        ),
        FileFormat(
            "reward-config",
            "Reward configuration (JSON or YAML)",
            Shape.document,
            "formats/reward-config.md",
            "PUT .../reward-config, `rubric-studio reward set`",
            model=("app.rewards.config", "RewardConfigModel"),
        ),
        FileFormat(
            "export-bundle",
            "Export bundle spec (the hashed part of a bundle: what the reward functions run)",
            Shape.document,
            "formats/export-bundle.md",
            "GET .../exports/{id}/targets/bundle, `rubric-studio exports write --target bundle`",
            model=("app.exports.bundle_format", "ExportBundleSpec"),
        ),
    )
}


@lru_cache(maxsize=16)
def _schema_of(name: str) -> dict[str, Any]:
    fmt = FORMATS[name]
    if fmt.schema_file is not None:
        return load_schema(str(fmt.schema_file))
    assert fmt.model is not None
    return _model_schema(*fmt.model, title=f"Rubric Studio {fmt.title[0].lower()}{fmt.title[1:]}")


@lru_cache(maxsize=16)
def _validator_of(name: str) -> Any:
    return validator_for(_schema_of(name))


def check_value(name: str, value: Any) -> list[tuple[str, str]]:
    """(field, message) for each way one value (a document, or one line) departs from the
    format's schema; none: it conforms."""
    fmt = FORMATS[name]
    if fmt.schema_file is not None:
        return schema_problems(fmt.schema_file, value)
    return problems_with(_validator_of(name), value)
