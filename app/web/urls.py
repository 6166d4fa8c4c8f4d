"""One builder for the app's project URLs, used by views (redirects) and templates alike.

`project_url(7, "judges", "runs", 12)` → ``/projects/7/judges/runs/12``; keyword arguments
become the query string (``None`` values are left out). Templates call the same function
(a Jinja global), so a section's address is written in one place.
"""

from __future__ import annotations

from urllib.parse import urlencode


def project_url(project_id: int | None, *parts: object, **query: object) -> str:
    path = "/projects/" + "/".join(str(part) for part in (project_id, *parts))
    params = {key: value for key, value in query.items() if value is not None}
    return f"{path}?{urlencode(params)}" if params else path
