"""training runs and drift samples

Adds `training_run` and replaces the unused `drift_sample` stub (nothing ever wrote to it) with
the table of §8 drift records: one row per record, unique per training run, each linked to the
rollout made from it, with the figures the dashboard aggregates in typed columns.

Revision ID: 0006_drift_samples
Revises: 0007_verdict_winner_inconsistent
Create Date: 2026-12-07 16:44:16
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_drift_samples"
down_revision: str | None = "0007_verdict_winner_inconsistent"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
SOURCES = "'nova-lambda', 'trl', 'verl', 'other'"
JUDGE_STATUSES = "'ok', 'error', 'skipped', 'disabled', 'absent'"


def upgrade() -> None:
    _drop_stub()
    op.create_table(
        "training_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("export_bundle_id", sa.Integer(), nullable=True),
        sa.Column("base_model", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column("notes", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("synthetic", sa.Boolean(), nullable=False),
        sa.Column("step_map", JSON, nullable=True),
        sa.Column("sample_count", BIGINT, nullable=False),
        sa.Column("step_min", sa.Integer(), nullable=True),
        sa.Column("step_max", sa.Integer(), nullable=True),
        sa.Column("data_version", sa.Integer(), nullable=False),
        sa.Column("series_cache", JSON, nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user.id"],
            name=op.f("fk_training_run_created_by_id_user"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["export_bundle_id"],
            ["export_bundle.id"],
            name=op.f("fk_training_run_export_bundle_id_export_bundle"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
            name=op.f("fk_training_run_project_id_project"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_run")),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_training_run_project_id_name")),
    )
    with op.batch_alter_table("training_run", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_training_run_export_bundle_id"), ["export_bundle_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_training_run_project_id"), ["project_id"], unique=False
        )

    op.create_table(
        "drift_sample",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("training_run_id", sa.Integer(), nullable=False),
        sa.Column("record_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("rollout_id", BIGINT, nullable=True),
        sa.Column("step", sa.Integer(), nullable=True),
        sa.Column("step_mapped", sa.Boolean(), nullable=False),
        sa.Column("recorded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("bundle_hash", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("sample_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("group_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("prompt_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("reward", sa.Float(), nullable=False),
        sa.Column("components", JSON, nullable=False),
        sa.Column("components_passed", JSON, nullable=False),
        sa.Column("gated_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("judge_status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("judge_criteria", JSON, nullable=False),
        sa.Column("judge_aggregate", sa.Float(), nullable=True),
        sa.Column("neutral_reward", sa.Boolean(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("response_chars", sa.Integer(), nullable=False),
        sa.Column("judge_addressed", sa.Boolean(), nullable=False),
        sa.Column("quotes_total", sa.Integer(), nullable=True),
        sa.Column("quotes_ungrounded", sa.Integer(), nullable=True),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("import_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.CheckConstraint(f"source IN ({SOURCES})", name=op.f("ck_drift_sample_source")),
        sa.CheckConstraint(
            f"judge_status IN ({JUDGE_STATUSES})", name=op.f("ck_drift_sample_judge_status")
        ),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["rollout_import.id"],
            name=op.f("fk_drift_sample_import_id_rollout_import"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
            name=op.f("fk_drift_sample_project_id_project"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollout.id"],
            name=op.f("fk_drift_sample_rollout_id_rollout"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["training_run_id"],
            ["training_run.id"],
            name=op.f("fk_drift_sample_training_run_id_training_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_sample")),
        sa.UniqueConstraint(
            "training_run_id", "record_id", name=op.f("uq_drift_sample_training_run_id_record_id")
        ),
    )
    with op.batch_alter_table("drift_sample", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_drift_sample_import_id"), ["import_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_drift_sample_project_id"), ["project_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_drift_sample_rollout_id"), ["rollout_id"], unique=False
        )
        batch_op.create_index(
            "ix_drift_sample_run_group", ["training_run_id", "group_id"], unique=False
        )
        batch_op.create_index(
            "ix_drift_sample_run_recorded", ["training_run_id", "recorded_at"], unique=False
        )
        batch_op.create_index(
            "ix_drift_sample_run_prompt", ["training_run_id", "prompt_key", "step"], unique=False
        )
        batch_op.create_index("ix_drift_sample_run_step", ["training_run_id", "step"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("drift_sample", schema=None) as batch_op:
        batch_op.drop_index("ix_drift_sample_run_step")
        batch_op.drop_index("ix_drift_sample_run_prompt")
        batch_op.drop_index("ix_drift_sample_run_recorded")
        batch_op.drop_index("ix_drift_sample_run_group")
        batch_op.drop_index(batch_op.f("ix_drift_sample_rollout_id"))
        batch_op.drop_index(batch_op.f("ix_drift_sample_project_id"))
        batch_op.drop_index(batch_op.f("ix_drift_sample_import_id"))
    op.drop_table("drift_sample")
    with op.batch_alter_table("training_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_training_run_project_id"))
        batch_op.drop_index(batch_op.f("ix_training_run_export_bundle_id"))
    op.drop_table("training_run")
    _create_stub()


def _drop_stub() -> None:
    with op.batch_alter_table("drift_sample", schema=None) as batch_op:
        batch_op.drop_index("ix_drift_sample_project_step")
        batch_op.drop_index(batch_op.f("ix_drift_sample_project_id"))
    op.drop_table("drift_sample")


def _create_stub() -> None:
    """The table as migration 0001 made it."""
    op.create_table(
        "drift_sample",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("rollout_id", BIGINT, nullable=False),
        sa.Column("verdict_id", BIGINT, nullable=True),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("reward", sa.Float(), nullable=True),
        sa.Column("stratum", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("audit_status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("audited_by_id", sa.Integer(), nullable=True),
        sa.Column("audit_note", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("sampled_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("audited_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["audited_by_id"],
            ["user.id"],
            name=op.f("fk_drift_sample_audited_by_id_user"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
            name=op.f("fk_drift_sample_project_id_project"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rollout_id"], ["rollout.id"], name=op.f("fk_drift_sample_rollout_id_rollout")
        ),
        sa.ForeignKeyConstraint(
            ["verdict_id"], ["verdict.id"], name=op.f("fk_drift_sample_verdict_id_verdict")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_sample")),
    )
    with op.batch_alter_table("drift_sample", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_drift_sample_project_id"), ["project_id"], unique=False
        )
        batch_op.create_index("ix_drift_sample_project_step", ["project_id", "step"], unique=False)
