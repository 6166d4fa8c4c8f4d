"""Rubric as code: a whole rubric (draft and published versions) as a YAML or JSON document.

Round trips losslessly; loading reports every problem with its field path (and its line for
YAML). YAML is read with yaml.safe_load only.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.rubrics.definition import Criterion, Mode, RubricDefinition, content_hash

Format = Literal["yaml", "json"]
FORMAT_VERSION: Literal[1] = 1


def _aware(value: datetime) -> datetime:
    # Naive timestamps (e.g. read back from SQLite) are taken as UTC so the file is unambiguous.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


Timestamp = Annotated[datetime, AfterValidator(_aware)]


class _DocModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Approval(_DocModel):
    by: str
    at: Timestamp
    comment: str = ""


class RubricVersionDocument(_DocModel):
    number: int = Field(ge=1)
    definition: RubricDefinition
    change_note: str = ""
    created_by: str
    created_at: Timestamp
    content_hash: str
    approvals: list[Approval] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_hash(self) -> RubricVersionDocument:
        expected = content_hash(self.definition)
        if self.content_hash != expected:
            raise ValueError(
                f"content_hash: does not match the definition of version {self.number} "
                f"(expected {expected}); a published version must not be edited by hand"
            )
        return self


class RubricDocument(_DocModel):
    format_version: Literal[1] = FORMAT_VERSION
    name: str
    description: str = ""
    mode: Mode
    draft: RubricDefinition | None = None
    versions: list[RubricVersionDocument] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_consistency(self) -> RubricDocument:
        if not self.name.strip():
            raise ValueError("name: must not be empty")
        numbers = [version.number for version in self.versions]
        if numbers != sorted(set(numbers)):
            raise ValueError(f"versions: numbers must be unique and ascending, got {numbers}")
        if self.draft is not None and self.draft.mode != self.mode:
            raise ValueError(f"draft.mode: '{self.draft.mode}' differs from mode '{self.mode}'")
        for index, version in enumerate(self.versions):
            if version.definition.mode != self.mode:
                raise ValueError(
                    f"versions[{index}].definition.mode: '{version.definition.mode}' differs "
                    f"from mode '{self.mode}'"
                )
        return self


class FormatIssue(BaseModel):
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.path + (f" (line {self.line})" if self.line is not None else "")
        return f"{where}: {self.message}"


class RubricFormatError(ValueError):
    """A rubric document that cannot be read; `issues` lists each problem and where it is."""

    def __init__(self, issues: list[FormatIssue]) -> None:
        self.issues = issues
        super().__init__("invalid rubric document:\n" + "\n".join(f"- {i}" for i in issues))


class _BlockStyleDumper(yaml.SafeDumper):
    """Safe dumper that writes multi-line strings (templates, descriptions) as | blocks."""


# Characters YAML reads as line breaks: PyYAML may write them raw in plain or block
# scalars and read them back changed, so such strings are written double-quoted (escaped).
_UNSAFE_BREAKS = ("\r", "\x85", "\u2028", "\u2029")


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style: str | None = None
    if any(char in value for char in _UNSAFE_BREAKS):
        style = '"'
    elif "\n" in value:
        # PyYAML falls back to a quoted style by itself when a block scalar cannot be exact.
        style = "|"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockStyleDumper.add_representer(str, _represent_str)


def dump_rubric(doc: RubricDocument, fmt: Format = "yaml") -> str:
    """The document as YAML or JSON text (keys in model order, Unicode kept)."""
    data = doc.model_dump(mode="json")
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        return yaml.dump(
            data,
            Dumper=_BlockStyleDumper,
            sort_keys=False,
            allow_unicode=True,
            width=100,
            default_flow_style=False,
        )
    raise ValueError(f"unknown format {fmt!r}: use 'yaml' or 'json'")


def _path_text(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(document)"


def _yaml_line(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at `loc`, or of its deepest existing ancestor."""
    node = root
    line = root.start_mark.line + 1 if root is not None else None
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(part):
                    child = value_node
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
        if child is None:
            break
        node = child
        line = node.start_mark.line + 1
    return line


def _clean_message(message: str) -> str:
    return message.removeprefix("Value error, ")


# Model-level validators start their messages with the field path they are about,
# e.g. "criteria[2].key: duplicate ..."; that path is moved into the issue's path.
_MESSAGE_PATH = re.compile(
    r"^([A-Za-z_]\w*(?:\[\d+\])*(?:\.[A-Za-z_]\w*(?:\[\d+\])*)*): (.+)$", re.S
)
_PATH_PART = re.compile(r"([A-Za-z_]\w*)|\[(\d+)\]")


def _split_path(path: str) -> tuple[str | int, ...]:
    return tuple(name if name else int(index) for name, index in _PATH_PART.findall(path))


def _issues_from_validation(
    exc: ValidationError, root: yaml.Node | None, fmt: Format
) -> list[FormatIssue]:
    issues = []
    for error in exc.errors():
        loc: tuple[str | int, ...] = tuple(error["loc"])
        message = _clean_message(error["msg"])
        match = _MESSAGE_PATH.match(message)
        if match:
            loc += _split_path(match.group(1))
            message = match.group(2)
        issues.append(
            FormatIssue(
                path=_path_text(loc),
                message=message,
                line=_yaml_line(root, loc) if fmt == "yaml" else None,
            )
        )
    return issues


_TOO_DEEP = FormatIssue(path="(document)", message="nested too deeply to read", line=None)


def load_rubric(text: str, fmt: Format = "yaml") -> RubricDocument:
    """Parse and validate a rubric document; raises RubricFormatError on any problem."""
    root: yaml.Node | None = None
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RubricFormatError(
                [
                    FormatIssue(
                        path="(document)", message=f"invalid JSON: {exc.msg}", line=exc.lineno
                    )
                ]
            ) from None
        except RecursionError:
            raise RubricFormatError([_TOO_DEEP]) from None
    elif fmt == "yaml":
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or str(exc)
            raise RubricFormatError(
                [
                    FormatIssue(
                        path="(document)",
                        message=f"invalid YAML: {problem}",
                        line=mark.line + 1 if mark is not None else None,
                    )
                ]
            ) from None
        except RecursionError:
            raise RubricFormatError([_TOO_DEEP]) from None
    else:
        raise ValueError(f"unknown format {fmt!r}: use 'yaml' or 'json'")
    if not isinstance(data, dict):
        raise RubricFormatError(
            [
                FormatIssue(
                    path="(document)",
                    message=f"expected a mapping of fields, got {type(data).__name__}",
                    line=1 if fmt == "yaml" else None,
                )
            ]
        )
    if data.get("format_version") != FORMAT_VERSION:
        raise RubricFormatError(
            [
                FormatIssue(
                    path="format_version",
                    message=f"unsupported format_version {data.get('format_version')!r}; "
                    f"this version of Rubric Studio reads {FORMAT_VERSION}",
                    line=_yaml_line(root, ("format_version",)) if fmt == "yaml" else None,
                )
            ]
        )
    try:
        return RubricDocument.model_validate(data)
    except ValidationError as exc:
        raise RubricFormatError(_issues_from_validation(exc, root, fmt)) from None


class _ReadableDumper(yaml.SafeDumper):
    """Multi-line text as | blocks, so template and description changes diff line by line."""


def _represent_readable_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None
    )


_ReadableDumper.add_representer(str, _represent_readable_str)


def _in_field_order(data: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    # Both sides of a comparison get every field in the same order, so only real edits differ.
    ordered: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name in data:
            ordered[name] = data[name]
        elif not info.is_required():
            ordered[name] = info.get_default(call_default_factory=True)
    return ordered | {k: v for k, v in data.items() if k not in ordered}


def readable_yaml(draft: dict[str, Any]) -> str:
    """A draft as YAML for people (the conflict view): fields in the definition's order, one
    line per value (no wrapping) so a line-by-line comparison shows exactly what differs."""
    data = _in_field_order(draft, RubricDefinition)
    if isinstance(data.get("criteria"), list):
        data["criteria"] = [
            _in_field_order(c, Criterion) if isinstance(c, dict) else c for c in data["criteria"]
        ]
    return yaml.dump(
        data, Dumper=_ReadableDumper, sort_keys=False, allow_unicode=True, width=1_000_000
    )
