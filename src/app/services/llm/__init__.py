"""The model layer: one gateway for every LLM call, and SmolLM2 run in-process.

Importing this package is cheap: litellm (~3 s) and llama.cpp load on first use.
"""

from app.services.llm.gateway import (
    Completion,
    LLMGateway,
    LLMUnavailable,
    StreamEvent,
    TokenDelta,
    load_litellm,
)

__all__ = [
    "Completion",
    "LLMGateway",
    "LLMUnavailable",
    "StreamEvent",
    "TokenDelta",
    "load_litellm",
]
