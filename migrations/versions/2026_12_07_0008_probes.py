"""probe runs and their rewritten rollouts

Revision ID: 0008_probes
Revises: 0009_import_repeats
Create Date: 2026-12-07 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision: str = "0008_probes"
down_revision: str | None = "0009_import_repeats"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")


def _bigint() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "probe_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("rubric_version_id", sa.Integer(), nullable=False),
        sa.Column("judge_config_id", sa.Integer(), nullable=True),
        sa.Column("judge_run_id", sa.Integer(), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("seed", _bigint(), nullable=False),
        sa.Column("probes", _json(), nullable=False),
        sa.Column("custom", _json(), nullable=False),
        sa.Column("thresholds", _json(), nullable=False),
        sa.Column("selection", _json(), nullable=False),
        sa.Column("config_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("reward_revision", sa.Integer(), nullable=True),
        sa.Column("reward_config", _json(), nullable=False),
        sa.Column("items_total", sa.Integer(), nullable=False),
        sa.Column("report", _json(), nullable=True),
        sa.Column("message", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("finished_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user.id"],
            name=op.f("fk_probe_run_created_by_id_user"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["judge_config_id"],
            ["judge_config.id"],
            name=op.f("fk_probe_run_judge_config_id_judge_config"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["judge_run_id"],
            ["judge_run.id"],
            name=op.f("fk_probe_run_judge_run_id_judge_run"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
            name=op.f("fk_probe_run_project_id_project"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rubric_version_id"],
            ["rubric_version.id"],
            name=op.f("fk_probe_run_rubric_version_id_rubric_version"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_probe_run")),
    )
    with op.batch_alter_table("probe_run", schema=None) as batch_op:
        batch_op.create_index(
            "ix_probe_run_project_hash", ["project_id", "config_hash"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_probe_run_project_id"), ["project_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_probe_run_rubric_version_id"), ["rubric_version_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_probe_run_status"), ["status"], unique=False)

    op.create_table(
        "probe_item",
        sa.Column("id", _bigint(), nullable=False),
        sa.Column("probe_run_id", sa.Integer(), nullable=False),
        sa.Column("probe", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("variant", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("original_rollout_id", _bigint(), nullable=False),
        sa.Column("rollout_id", _bigint(), nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(
            ["original_rollout_id"],
            ["rollout.id"],
            name=op.f("fk_probe_item_original_rollout_id_rollout"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["probe_run_id"],
            ["probe_run.id"],
            name=op.f("fk_probe_item_probe_run_id_probe_run"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollout.id"],
            name=op.f("fk_probe_item_rollout_id_rollout"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_probe_item")),
    )
    with op.batch_alter_table("probe_item", schema=None) as batch_op:
        batch_op.create_index("ix_probe_item_run_probe", ["probe_run_id", "probe"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_probe_item_original_rollout_id"), ["original_rollout_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("probe_item", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_probe_item_original_rollout_id"))
        batch_op.drop_index("ix_probe_item_run_probe")
    op.drop_table("probe_item")
    with op.batch_alter_table("probe_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_probe_run_status"))
        batch_op.drop_index(batch_op.f("ix_probe_run_rubric_version_id"))
        batch_op.drop_index(batch_op.f("ix_probe_run_project_id"))
        batch_op.drop_index("ix_probe_run_project_hash")
    op.drop_table("probe_run")
