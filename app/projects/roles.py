"""The project roles (an enum with no database imports, so the permission table stays light)."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    admin = "admin"
    engineer = "engineer"
    expert = "expert"
    reviewer = "reviewer"
