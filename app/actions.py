"""Every action a person can take in the studio, with its command and its JSON route.

The one table behind docs/cli-and-api.md. tests/unit/core/test_actions.py derives the actions from
the app itself (each state-changing browser route, each permission of the engineer and admin
roles) and fails when one is missing here, or when a listed command or route does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.auth.policies import Permission as P
from app.auth.policies import roles_with


@dataclass(frozen=True)
class Action:
    title: str
    permission: P | None  # None: any signed-in account (site admins: see `site_admin`)
    cli: str  # the command, after `rubric-studio`
    api: str  # "METHOD /api/v1/..."
    pages: tuple[str, ...] = ()  # the browser routes doing it ("module:function")
    site_admin: bool = False


ACTIONS: tuple[Action, ...] = (
    # ---- projects and members
    Action(
        "Create a project",
        None,
        "projects create",
        "POST /api/v1/projects",
        ("app.projects.views:project_create_action",),
    ),
    Action(
        "Edit project settings (task, output schema, where the document is)",
        P.project_manage,
        "projects update",
        "PUT /api/v1/projects/{project_id}",
        ("app.projects.views:project_settings_action",),
    ),
    Action(
        "Set the sign-off policy (single approver)",
        P.project_manage,
        "projects approval-policy",
        "PUT /api/v1/projects/{project_id}/approval-policy",
        ("app.projects.views:project_approval_policy_action",),
    ),
    Action(
        "Add a member",
        P.project_manage,
        "projects members add",
        "POST /api/v1/projects/{project_id}/members",
        ("app.projects.views:member_add_action",),
    ),
    Action(
        "Change a member's role",
        P.project_manage,
        "projects members role",
        "PUT /api/v1/projects/{project_id}/members/{membership_id}",
        ("app.projects.views:member_role_action",),
    ),
    Action(
        "Remove a member",
        P.project_manage,
        "projects members remove",
        "DELETE /api/v1/projects/{project_id}/members/{membership_id}",
        ("app.projects.views:member_remove_action",),
    ),
    # ---- accounts and tokens
    Action(
        "Create an API token",
        None,
        "tokens create",
        "POST /api/v1/tokens",
        ("app.auth.views:token_create_action",),
    ),
    Action("List API tokens", None, "tokens list", "GET /api/v1/tokens"),
    Action(
        "Revoke an API token",
        None,
        "tokens revoke",
        "DELETE /api/v1/tokens/{token_id}",
        ("app.auth.views:token_revoke_action",),
    ),
    Action(
        "Create an account",
        None,
        "users create",
        "POST /api/v1/users",
        ("app.auth.views:user_create_action",),
        site_admin=True,
    ),
    Action(
        "Deactivate or reactivate an account",
        None,
        "users deactivate",
        "PUT /api/v1/users/{user_id}/active",
        ("app.auth.views:user_active_action",),
        site_admin=True,
    ),
    # ---- rollouts
    Action(
        "Import rollouts (with a CSV column mapping)",
        P.rollout_import,
        "import",
        "POST /api/v1/projects/{project_id}/imports",
        ("app.rollouts.views:import_upload_action", "app.rollouts.views:import_mapping_action"),
    ),
    Action(
        "Cancel a rollout import",
        P.rollout_import,
        "imports cancel",
        "POST /api/v1/projects/{project_id}/imports/{import_id}/cancel",
        ("app.rollouts.views:import_cancel_action",),
    ),
    # ---- rubrics
    Action(
        "Create a rubric",
        P.rubric_edit,
        "rubrics create",
        "POST /api/v1/projects/{project_id}/rubrics",
        ("app.rubrics.views:rubric_create_action",),
    ),
    Action(
        "Import a rubric file",
        P.rubric_edit,
        "rubrics import",
        "POST /api/v1/projects/{project_id}/rubrics/import",
        ("app.rubrics.views:rubric_import_action",),
    ),
    Action(
        "Export a rubric file",
        P.project_read,
        "rubrics export",
        "GET /api/v1/projects/{project_id}/rubrics/{rubric_id}/export",
    ),
    Action(
        "Edit a rubric draft (criteria, templates, few-shot examples, regenerate templates)",
        P.rubric_edit,
        "rubrics draft",
        "PUT /api/v1/projects/{project_id}/rubrics/{rubric_id}/draft",
        (
            "app.rubrics.views:rubric_draft_save_action",
            "app.rubrics.views:rubric_example_add_action",
            "app.rubrics.views:rubric_example_remove_action",
            "app.rubrics.views:rubric_regenerate_action",
        ),
    ),
    Action(
        "Render the judge prompt for a rollout",
        P.project_read,
        "rubrics render",
        "GET /api/v1/projects/{project_id}/rubrics/{rubric_id}/versions/{number}/render",
        ("app.rubrics.views:rubric_preview_action",),
    ),
    Action(
        "Publish a rubric version",
        P.rubric_publish,
        "rubrics publish",
        "POST /api/v1/projects/{project_id}/rubrics/{rubric_id}/publish",
        ("app.rubrics.version_views:rubric_publish_action",),
    ),
    Action(
        "Approve (sign off) a rubric version",
        P.rubric_approve,
        "rubrics approve",
        "POST /api/v1/projects/{project_id}/rubrics/{rubric_id}/versions/{number}/approve",
        ("app.rubrics.version_views:rubric_approve_action",),
    ),
    Action(
        "Archive or restore a rubric",
        P.rubric_edit,
        "rubrics archive",
        "POST /api/v1/projects/{project_id}/rubrics/{rubric_id}/archive",
        ("app.rubrics.version_views:rubric_archive_action",),
    ),
    # ---- judges
    Action(
        "Create a judge configuration",
        P.judge_manage,
        "judge config create",
        "POST /api/v1/projects/{project_id}/judge-configs",
        ("app.judging.views:config_create_action",),
    ),
    Action(
        "Update a judge configuration",
        P.judge_manage,
        "judge config update",
        "PUT /api/v1/projects/{project_id}/judge-configs/{config_id}",
        ("app.judging.views:config_update_action",),
    ),
    Action(
        "Delete a judge configuration",
        P.judge_manage,
        "judge config delete",
        "DELETE /api/v1/projects/{project_id}/judge-configs/{config_id}",
        ("app.judging.views:config_delete_action",),
    ),
    Action(
        "Test a judge configuration's connection",
        P.judge_manage,
        "judge config test",
        "POST /api/v1/projects/{project_id}/judge-configs/{config_id}/test-connection",
        ("app.judging.views:config_test_connection_fragment",),
    ),
    Action(
        "Start judge runs",
        P.judge_run,
        "judge run",
        "POST /api/v1/projects/{project_id}/judge-runs",
        ("app.judging.views:run_create_action",),
    ),
    Action(
        "Cancel a judge run",
        P.judge_run,
        "judge cancel",
        "POST /api/v1/projects/{project_id}/judge-runs/{run_id}/cancel",
        ("app.judging.views:run_cancel_action",),
    ),
    Action(
        "Resume a judge run",
        P.judge_run,
        "judge resume",
        "POST /api/v1/projects/{project_id}/judge-runs/{run_id}/resume",
        ("app.judging.views:run_resume_action",),
    ),
    Action(
        "Import verdicts",
        P.judge_run,
        "judge import-verdicts",
        "POST /api/v1/projects/{project_id}/judge-runs/import",
        ("app.judging.views:import_action",),
    ),
    Action(
        "Read a run's verdicts (paged)",
        P.project_read,
        "judge verdicts",
        "GET /api/v1/projects/{project_id}/judge-runs/{run_id}/verdicts",
    ),
    # ---- labels, queues, gold, disagreements
    Action(
        "Create an annotation queue",
        P.queue_manage,
        "queues create",
        "POST /api/v1/projects/{project_id}/queues",
        ("app.labels.views:queue_create_action",),
    ),
    Action(
        "Close or reopen a queue",
        P.queue_manage,
        "queues close",
        "POST /api/v1/projects/{project_id}/queues/{queue_id}/close",
        ("app.labels.views:queue_close_action",),
    ),
    Action(
        "Keep a draft label",
        P.label_write,
        "labels submit --draft",
        "PUT /api/v1/projects/{project_id}/queues/{queue_id}/items/{item_id}/draft",
        ("app.labels.views:label_draft_action",),
    ),
    Action(
        "Submit a label",
        P.label_write,
        "labels submit",
        "POST /api/v1/projects/{project_id}/queues/{queue_id}/items/{item_id}/submit",
        ("app.labels.views:label_submit_action",),
    ),
    Action(
        "Label an audit sample (each criterion, and did it deserve its reward?)",
        P.drift_audit,
        "labels submit",
        "POST /api/v1/projects/{project_id}/queues/{queue_id}/items/{item_id}/submit",
    ),
    Action(
        "Import labels",
        P.label_import,
        "labels import",
        "POST /api/v1/projects/{project_id}/labels/import",
        ("app.labels.transfer_views:labels_import_action",),
    ),
    Action(
        "Export labels",
        P.project_read,
        "labels export",
        "GET /api/v1/projects/{project_id}/labels/export",
    ),
    Action(
        "Resolve a disagreement",
        P.disagreement_resolve,
        "disagreements resolve",
        "POST /api/v1/projects/{project_id}/runs/{run_id}/disagreements/resolve",
        ("app.labels.review_views:disagreement_resolve_action",),
    ),
    Action(
        "Add gold items",
        P.gold_manage,
        "gold add",
        "POST /api/v1/projects/{project_id}/gold",
        ("app.labels.gold_views:gold_add_action",),
    ),
    Action(
        "Remove a gold item",
        P.gold_manage,
        "gold remove",
        "DELETE /api/v1/projects/{project_id}/gold/{gold_id}",
        ("app.labels.gold_views:gold_remove_action",),
    ),
    Action(
        "Lock a gold item (move it to the test split)",
        P.gold_manage,
        "gold lock",
        "PATCH /api/v1/projects/{project_id}/gold/{gold_id}",
        ("app.labels.gold_views:gold_split_action",),
    ),
    # ---- agreement, reward, exports
    Action(
        "Read agreement",
        P.project_read,
        "agreement show",
        "GET /api/v1/projects/{project_id}/runs/{run_id}/agreement",
    ),
    Action(
        "Set the reward configuration",
        P.reward_edit,
        "reward set",
        "PUT /api/v1/projects/{project_id}/reward-config",
        ("app.rewards.views:reward_config_save_action",),
    ),
    Action(
        "Preview rewards",
        P.project_read,
        "reward preview",
        "GET /api/v1/projects/{project_id}/reward-preview",
    ),
    Action(
        "Preview rewards of a large selection in the background",
        P.project_read,
        "reward preview-job",
        "POST /api/v1/projects/{project_id}/reward-preview/jobs",
        ("app.rewards.views:reward_preview_job_start_action",),
    ),
    Action(
        "Check the export gate",
        P.project_read,
        "exports gate",
        "GET /api/v1/projects/{project_id}/exports/gate-check",
    ),
    Action(
        "Create an export bundle",
        P.export_create,
        "exports create",
        "POST /api/v1/projects/{project_id}/exports",
        ("app.exports.views:export_create_action",),
    ),
    Action(
        "Override a failing export gate (with a reason)",
        P.export_override,
        "exports create --override-reason",
        "POST /api/v1/projects/{project_id}/exports",
    ),
    Action(
        "Write a target (training package)",
        P.project_read,
        "exports write",
        "GET /api/v1/projects/{project_id}/exports/{bundle_id}/targets/{target}",
    ),
    # ---- probes
    Action(
        "Run probes",
        P.judge_run,
        "probes run",
        "POST /api/v1/projects/{project_id}/probe-runs",
        ("app.probes.views:probe_run_create_action",),
    ),
    Action(
        "Cancel a probe run",
        P.judge_run,
        "probes cancel",
        "POST /api/v1/projects/{project_id}/probe-runs/{run_id}/cancel",
        ("app.probes.views:probe_run_cancel_action",),
    ),
    # ---- drift
    Action(
        "Create a training run",
        P.drift_import,
        "drift create-run",
        "POST /api/v1/projects/{project_id}/training-runs",
        ("app.drift.views:training_run_create_action",),
    ),
    Action(
        "Import drift samples",
        P.drift_import,
        "drift import",
        "POST /api/v1/projects/{project_id}/training-runs/{run_id}/imports",
        ("app.drift.views:training_run_upload_action",),
    ),
    Action(
        "Import drift samples from S3",
        P.drift_import,
        "drift import-s3",
        "POST /api/v1/projects/{project_id}/training-runs/{run_id}/imports/s3",
        ("app.drift.views:training_run_s3_action",),
    ),
    Action(
        "Upload a step/time map",
        P.drift_import,
        "drift step-map",
        "PUT /api/v1/projects/{project_id}/training-runs/{run_id}/step-map",
        ("app.drift.views:training_run_step_map_action",),
    ),
    Action(
        "Set drift signal thresholds",
        P.drift_import,
        "drift thresholds",
        "PUT /api/v1/projects/{project_id}/drift-thresholds",
        ("app.drift.views:drift_settings_action",),
    ),
    Action(
        "Draw a stratified audit",
        P.drift_audit_create,
        "drift audit",
        "POST /api/v1/projects/{project_id}/training-runs/{run_id}/audits",
        ("app.drift.audit_views:audit_create_action",),
    ),
    Action(
        "Start a judge drift check",
        P.judge_run,
        "drift check",
        "POST /api/v1/projects/{project_id}/exports/{bundle_id}/drift-checks",
        ("app.drift.audit_views:drift_check_start_action",),
    ),
    Action("Read the audit log", P.audit_read, "audit", "GET /api/v1/projects/{project_id}/audit"),
)

# Browser routes that are not actions of a role: signing in and out (a script uses a token).
SESSION_PAGES = ("app.auth.views:login_action", "app.auth.views:logout_action")


def who(action: Action) -> str:
    if action.site_admin:
        return "site admin"
    if action.permission is None:
        return "any account"
    return ", ".join(role.value for role in roles_with(action.permission))


def markdown_table() -> str:
    """The table of docs/cli-and-api.md (the test checks the page holds exactly this)."""
    lines = [
        "| action | who may | command (`rubric-studio …`) | API |",
        "|---|---|---|---|",
    ]
    for a in ACTIONS:
        lines.append(f"| {a.title} | {who(a)} | `{a.cli}` | `{a.api}` |")
    return "\n".join(lines)
