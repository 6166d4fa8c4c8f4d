"""The rollout table's columns in the order the bulk paths (COPY and batched inserts) write
them: one list for the rollout import and the drift import. Pure."""

from __future__ import annotations

ROLLOUT_COLUMNS = (
    "project_id",
    "external_id",
    "content_hash",
    "input_messages",
    "target_document",
    "reference_documents",
    "reference_answer",
    "response",
    "model",
    "checkpoint",
    "step",
    "group_key",
    "source_file",
    "source_line",
    "metadata",
    "import_id",
    "created_at",
    "from_drift",
)

ROLLOUT_JSON_COLUMNS = frozenset(
    {"input_messages", "reference_documents", "reference_answer", "metadata"}
)
