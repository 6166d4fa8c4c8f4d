"""Studio-side alias of app.llm.json_extract; generated packages get a verbatim copy instead."""

from app.llm.json_extract import extract_json as extract_json
from app.llm.json_extract import repair_instructions as repair_instructions
