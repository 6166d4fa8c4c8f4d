"""Built-in demo data sets: the legal contract-review case and LLMBar preference pairs."""

from app.demo.legal import DemoDataset, build_legal_demo, iter_jsonl_lines, write_jsonl
from app.demo.preference import build_preference_demo

__all__ = [
    "DemoDataset",
    "build_legal_demo",
    "build_preference_demo",
    "iter_jsonl_lines",
    "write_jsonl",
]
