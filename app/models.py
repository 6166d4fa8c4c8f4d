"""Imports every domain's tables so SQLModel.metadata (and Alembic) sees them all."""

from app.audit.models import AuditEvent
from app.auth.models import ApiToken, LoginAttempt, User, UserSession
from app.core.stored import FigureRefresh, StoredFigure
from app.drift.audit_models import DriftAudit, DriftAuditSample, JudgeDriftCheck
from app.drift.models import DriftSample, TrainingRun
from app.exports.models import ExportBundle
from app.judging.models import JudgeConfig, JudgeRun, JudgeWorkItem, Verdict
from app.labels.models import (
    AnnotationQueue,
    DisagreementResolution,
    GoldItem,
    Label,
    LabelRevision,
    LabelTally,
    QueueAssignee,
    QueueItem,
)
from app.probes.models import ProbeItem, ProbeRun
from app.projects.models import Membership, Project
from app.rewards.models import RewardConfig, RewardPreviewJob
from app.rollouts.models import Rollout, RolloutImport, RolloutPair
from app.rubrics.models import Rubric, RubricApproval, RubricVersion

__all__ = [
    "AnnotationQueue",
    "ApiToken",
    "AuditEvent",
    "DisagreementResolution",
    "DriftAudit",
    "DriftAuditSample",
    "DriftSample",
    "ExportBundle",
    "FigureRefresh",
    "GoldItem",
    "JudgeConfig",
    "JudgeDriftCheck",
    "JudgeRun",
    "JudgeWorkItem",
    "Label",
    "LabelRevision",
    "LabelTally",
    "LoginAttempt",
    "Membership",
    "ProbeItem",
    "ProbeRun",
    "Project",
    "QueueAssignee",
    "QueueItem",
    "RewardConfig",
    "RewardPreviewJob",
    "Rollout",
    "RolloutImport",
    "RolloutPair",
    "Rubric",
    "RubricApproval",
    "RubricVersion",
    "StoredFigure",
    "TrainingRun",
    "User",
    "UserSession",
    "Verdict",
]
