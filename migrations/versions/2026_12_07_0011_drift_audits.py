"""drift audits, judge drift checks, and the label's "deserved its reward?" answer

Adds `drift_audit` (a stratified sample of a training run, with its design, labelled in an
audit queue), `drift_audit_sample` (its samples and strata), `judge_drift_check` (a gold test
re-run with an export bundle's judge) and `label.deserved` (yes | no | unsure, audit queues).

Revision ID: 0011_drift_audits
Revises: 0006_drift_samples
Create Date: 2026-12-07 16:52:27
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy import Text  # noqa: F401  (autogenerate renders JSONB(astext_type=Text()))
from sqlalchemy.dialects import postgresql

revision: str = "0011_drift_audits"
down_revision: str | None = "0006_drift_samples"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "drift_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("training_run_id", sa.Integer(), nullable=False),
        sa.Column("queue_id", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column(
            "design",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user.id"],
            name=op.f("fk_drift_audit_created_by_id_user"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
            name=op.f("fk_drift_audit_project_id_project"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["queue_id"],
            ["annotation_queue.id"],
            name=op.f("fk_drift_audit_queue_id_annotation_queue"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["training_run_id"],
            ["training_run.id"],
            name=op.f("fk_drift_audit_training_run_id_training_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_audit")),
    )
    with op.batch_alter_table("drift_audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_drift_audit_project_id"), ["project_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_drift_audit_queue_id"), ["queue_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_drift_audit_training_run_id"), ["training_run_id"], unique=False
        )

    op.create_table(
        "judge_drift_check",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("export_bundle_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("training_run_id", sa.Integer(), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user.id"],
            name=op.f("fk_judge_drift_check_created_by_id_user"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["export_bundle_id"],
            ["export_bundle.id"],
            name=op.f("fk_judge_drift_check_export_bundle_id_export_bundle"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
            name=op.f("fk_judge_drift_check_project_id_project"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["judge_run.id"],
            name=op.f("fk_judge_drift_check_run_id_judge_run"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["training_run_id"],
            ["training_run.id"],
            name=op.f("fk_judge_drift_check_training_run_id_training_run"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_judge_drift_check")),
    )
    with op.batch_alter_table("judge_drift_check", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_judge_drift_check_export_bundle_id"), ["export_bundle_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_judge_drift_check_project_id"), ["project_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_judge_drift_check_run_id"), ["run_id"], unique=False)

    op.create_table(
        "drift_audit_sample",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("audit_id", sa.Integer(), nullable=False),
        sa.Column(
            "drift_sample_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "rollout_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("stratum", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.ForeignKeyConstraint(
            ["audit_id"],
            ["drift_audit.id"],
            name=op.f("fk_drift_audit_sample_audit_id_drift_audit"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["drift_sample_id"],
            ["drift_sample.id"],
            name=op.f("fk_drift_audit_sample_drift_sample_id_drift_sample"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rollout_id"], ["rollout.id"], name=op.f("fk_drift_audit_sample_rollout_id_rollout")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_audit_sample")),
    )
    with op.batch_alter_table("drift_audit_sample", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_drift_audit_sample_audit_id"), ["audit_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_drift_audit_sample_drift_sample_id"), ["drift_sample_id"], unique=False
        )

    with op.batch_alter_table("label", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("deserved", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("label", schema=None) as batch_op:
        batch_op.drop_column("deserved")

    with op.batch_alter_table("drift_audit_sample", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_drift_audit_sample_drift_sample_id"))
        batch_op.drop_index(batch_op.f("ix_drift_audit_sample_audit_id"))

    op.drop_table("drift_audit_sample")
    with op.batch_alter_table("judge_drift_check", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_judge_drift_check_run_id"))
        batch_op.drop_index(batch_op.f("ix_judge_drift_check_project_id"))
        batch_op.drop_index(batch_op.f("ix_judge_drift_check_export_bundle_id"))

    op.drop_table("judge_drift_check")
    with op.batch_alter_table("drift_audit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_drift_audit_training_run_id"))
        batch_op.drop_index(batch_op.f("ix_drift_audit_queue_id"))
        batch_op.drop_index(batch_op.f("ix_drift_audit_project_id"))

    op.drop_table("drift_audit")
