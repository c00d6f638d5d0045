"""litellm's "local" provider: model strings ``local/<name>`` run in-process by llama.cpp.

Importing this module imports litellm (~3 s), so only ``gateway.load_litellm()`` imports it,
on first use, never at app import.
"""

from __future__ import annotations

import os

# Before litellm is imported: use the bundled price map and never fetch tokenizers or
# prices from the network (else ~25 s of timeouts offline). Real env values still win.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")

import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

import litellm
from litellm.llms.custom_llm import CustomLLM, CustomLLMError
from litellm.types.llms.openai import ChatCompletionUsageBlock
from litellm.types.utils import GenericStreamingChunk, ModelResponse

from app.services.llm.local_model import (
    N_CTX,
    ContextOverflowError,
    GenerationResult,
    LocalModel,
    LocalModelError,
    get_smollm2,
)

PROVIDER = "local"
DEFAULT_MAX_TOKENS = 256
DEFAULT_TEMPERATURE = 0.3

# name after "local/" -> loader of the model that serves it
LOCAL_MODELS: dict[str, Callable[[], LocalModel]] = {"smollm2": get_smollm2}


def _error(status_code: int, message: str) -> Exception:
    """litellm maps a CustomLLMError's status to its exception classes (404, 400, 503...)."""
    error: Exception = CustomLLMError(status_code=status_code, message=message)  # type: ignore[no-untyped-call]
    return error


def _resolve(model: str) -> LocalModel:
    name = model.removeprefix(f"{PROVIDER}/")
    loader = LOCAL_MODELS.get(name)
    if loader is None:
        known = ", ".join(f"{PROVIDER}/{n}" for n in LOCAL_MODELS)
        raise _error(404, f"unknown local model {model!r}: {known}")
    try:
        return loader()
    except LocalModelError as exc:
        raise _error(503, str(exc)) from exc


def _params(kwargs: dict[str, Any]) -> tuple[int, float]:
    optional = kwargs.get("optional_params") or {}
    max_tokens = optional.get("max_tokens") or optional.get("max_completion_tokens")
    temperature = optional.get("temperature")
    return (
        int(max_tokens) if max_tokens else DEFAULT_MAX_TOKENS,
        float(temperature) if temperature is not None else DEFAULT_TEMPERATURE,
    )


def _usage(result: GenerationResult) -> ChatCompletionUsageBlock:
    return ChatCompletionUsageBlock(
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        total_tokens=result.prompt_tokens + result.completion_tokens,
    )


class LocalProvider(CustomLLM):
    """Serves ``local/*`` for ``litellm.acompletion`` (streaming or not) and ``completion``."""

    # litellm types the base as a coroutine, but it wraps whatever async iterator comes back
    async def astreaming(  # type: ignore[override]
        self, *args: Any, **kwargs: Any
    ) -> AsyncGenerator[GenericStreamingChunk, None]:
        local = _resolve(str(kwargs["model"]))
        max_tokens, temperature = _params(kwargs)
        stream = local.astream(kwargs["messages"], max_tokens=max_tokens, temperature=temperature)
        try:
            async for item in stream:
                if isinstance(item, str):
                    yield GenericStreamingChunk(
                        text=item, is_finished=False, finish_reason="", usage=None, index=0
                    )
                elif item.finish_reason == "preempted":
                    raise _error(503, "the local model stopped this background work for an answer")
                else:
                    yield GenericStreamingChunk(
                        text="",
                        is_finished=True,
                        finish_reason="length" if item.finish_reason == "length" else "stop",
                        usage=_usage(item),
                        index=0,
                    )
        except ContextOverflowError as exc:
            raise _error(400, str(exc)) from exc
        finally:
            await stream.aclose()  # stops the llama.cpp worker at its next token

    async def acompletion(self, *args: Any, **kwargs: Any) -> ModelResponse:
        parts: list[str] = []
        result: GenerationResult | None = None
        async for chunk in self.astreaming(*args, **kwargs):
            parts.append(chunk["text"])
            if chunk["is_finished"]:
                result = GenerationResult(
                    prompt_tokens=chunk["usage"]["prompt_tokens"] if chunk["usage"] else 0,
                    completion_tokens=chunk["usage"]["completion_tokens"] if chunk["usage"] else 0,
                    finish_reason=chunk["finish_reason"],
                )
        return _response(kwargs, "".join(parts), result)

    def completion(self, *args: Any, **kwargs: Any) -> ModelResponse:
        local = _resolve(str(kwargs["model"]))
        max_tokens, temperature = _params(kwargs)
        parts: list[str] = []
        try:
            result = local.generate(
                kwargs["messages"],
                max_tokens=max_tokens,
                temperature=temperature,
                emit=parts.append,
            )
        except ContextOverflowError as exc:
            raise _error(400, str(exc)) from exc
        return _response(kwargs, "".join(parts), result)


def _response(kwargs: dict[str, Any], text: str, result: GenerationResult | None) -> ModelResponse:
    response: ModelResponse = kwargs.get("model_response") or ModelResponse()
    response.choices[0].message.content = text
    response.choices[0].finish_reason = (
        "length" if result and result.finish_reason == "length" else "stop"
    )
    response.created = int(time.time())
    response.model = f"{PROVIDER}/{str(kwargs['model']).removeprefix(f'{PROVIDER}/')}"
    if result is not None:
        # ModelResponse keeps usage as a dynamic attribute (not declared on the class)
        setattr(response, "usage", litellm.Usage(**_usage(result)))  # noqa: B010
    return response


_registered = False


def register() -> None:
    """Add the local provider to litellm and price its models at zero (idempotent)."""
    global _registered
    if _registered:
        return
    litellm.custom_provider_map = [
        *(item for item in litellm.custom_provider_map if item.get("provider") != PROVIDER),
        {"provider": PROVIDER, "custom_handler": LocalProvider()},
    ]
    litellm.register_model(
        {
            f"{PROVIDER}/{name}": {
                "max_tokens": N_CTX,
                "max_input_tokens": N_CTX,
                "max_output_tokens": N_CTX,
                "input_cost_per_token": 0.0,
                "output_cost_per_token": 0.0,
                "cache_creation_input_token_cost": 0.0,
                "cache_read_input_token_cost": 0.0,
                "litellm_provider": PROVIDER,
                "mode": "chat",
            }
            for name in LOCAL_MODELS
        }
    )
    _registered = True
