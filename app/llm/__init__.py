"""Judge LLM providers behind one small protocol: Bedrock Converse, OpenAI-compatible, a fake."""

from app.llm.base import JudgeCall, JudgeProvider, JudgeReply, ProviderError
from app.llm.config import ProviderConfig
from app.llm.providers import make_provider
from app.llm.retry import RetryPolicy, call_with_retries

__all__ = [
    "JudgeCall",
    "JudgeProvider",
    "JudgeReply",
    "ProviderConfig",
    "ProviderError",
    "RetryPolicy",
    "call_with_retries",
    "make_provider",
]
