"""`rubric-studio drift`: the one command group, with the audit commands added to it.

app/drift/audit_cli.py registers `drift audit | agreement | check` on the group defined in
app/drift/cli.py; importing both here gives the complete group to the lazy top-level command.
"""

from app.drift import audit_cli  # noqa: F401  (registers its commands on cli.app)
from app.drift.cli import app

__all__ = ["app"]
