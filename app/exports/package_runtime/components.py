"""Studio-side alias of app.rewards.components; generated packages get a verbatim copy instead."""

from app.rewards.components import COMPONENT_ORDER as COMPONENT_ORDER
from app.rewards.components import document_text as document_text
from app.rewards.components import evaluate_components as evaluate_components
