"""Readers for each rollout file format; app.rollouts.parsing is the entry point."""
