"""Shared test helpers (servers, factories) used across the test suites."""
