"""Judging: judge configurations, durable judge runs executed by workers, and verdicts."""
