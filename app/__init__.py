"""Rubric Studio: design, calibrate and export LLM-as-a-judge reward functions."""
