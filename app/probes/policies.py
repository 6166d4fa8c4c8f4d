"""Who may do what with probes: reading is for every member; starting and cancelling a probe
run spends judge calls, so it needs the judge-run permission (engineers and admins)."""

from __future__ import annotations

from app.auth.policies import Permission

START = Permission.judge_run
CANCEL = Permission.judge_run
READ = Permission.project_read
