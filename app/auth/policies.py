"""Who may do what in a project: the one place where roles map to permissions."""

from __future__ import annotations

from enum import StrEnum

from app.projects.roles import Role


class Permission(StrEnum):
    project_read = "project.read"
    project_manage = "project.manage"  # settings, members and roles
    audit_read = "audit.read"
    rollout_import = "rollout.import"
    rubric_edit = "rubric.edit"
    rubric_publish = "rubric.publish"
    rubric_approve = "rubric.approve"
    judge_manage = "judge.manage"  # judge configurations
    judge_run = "judge.run"  # start, cancel, resume runs; import verdicts
    label_write = "label.write"
    label_import = "label.import"
    disagreement_resolve = "disagreement.resolve"
    gold_manage = "gold.manage"
    queue_manage = "queue.manage"
    reward_edit = "reward.edit"
    export_create = "export.create"
    export_override = "export.override"
    drift_audit = "drift.audit"  # label in audit queues
    drift_audit_create = "drift.audit_create"  # draw a stratified audit of a training run
    drift_import = "drift.import"  # training runs, sample imports, drift signal settings


_READ = {Permission.project_read}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.reviewer: frozenset(
        _READ | {Permission.drift_audit, Permission.drift_audit_create, Permission.label_write}
    ),
    Role.expert: frozenset(
        _READ
        | {
            Permission.label_write,
            Permission.disagreement_resolve,
            Permission.rubric_edit,
            Permission.rubric_publish,
            Permission.rubric_approve,
            Permission.gold_manage,
        }
    ),
    Role.engineer: frozenset(
        _READ
        | {
            Permission.rollout_import,
            Permission.label_import,
            Permission.judge_manage,
            Permission.judge_run,
            Permission.reward_edit,
            Permission.export_create,
            Permission.rubric_edit,
            Permission.rubric_publish,
            Permission.queue_manage,
            Permission.drift_import,
            # Engineers create audits (for reviewers to label) but do not label in them.
            Permission.drift_audit_create,
        }
    ),
}
# Admins may do everything the other roles may, plus manage the project and override gates.
ROLE_PERMISSIONS[Role.admin] = frozenset(Permission)


def role_allows(role: str | None, permission: Permission) -> bool:
    if role is None:
        return False
    try:
        return permission in ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return False


def roles_with(permission: Permission) -> list[Role]:
    return [role for role in Role if permission in ROLE_PERMISSIONS[role]]
