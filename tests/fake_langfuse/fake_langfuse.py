#!/usr/bin/env python3
"""A fake Langfuse server for lfharvest's tests.

It serves a deterministic, generated project (traces, observations, scores)
through the read endpoints lfharvest uses, in either API generation:

* ``current`` (Langfuse v4 / Cloud): ``/api/public/v3/scores`` (strict query,
  cursor paging) and ``/api/public/v2/observations`` (field groups, cursor
  paging, input/output as raw strings);
* ``legacy`` (self-hosted v2/v3): ``/api/public/scores``,
  ``/api/public/v2/scores`` and ``/api/public/observations`` (page/limit).

Both generations also serve ``/api/public/health``, ``/api/public/projects`` and
``/api/public/traces/{id}`` (the call a client must never make; it is counted).

A control plane under ``/__fake/`` (no auth, not counted) reads statistics,
injects faults (error statuses, latency, resets, truncated, trickled, stalled,
huge or corrupt bodies), simulates outages, and edits, deletes or adds data
while a client is syncing. See ``ControlApi`` and README.md.

Python 3.11 standard library only. Binds 127.0.0.1 and nothing else.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import hashlib
import hmac
import json
import math
import random
import re
import select
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Iterator

import server_load  # the heap and latency model (its own module)
from urllib.parse import parse_qsl, unquote, urlsplit

BIND_HOST = "127.0.0.1"
SERVER_VERSIONS = {"current": "4.16.0", "legacy": "3.120.0"}

SCORE_SOURCES = ("ANNOTATION", "API", "EVAL")
SCORE_DATA_TYPES = ("NUMERIC", "BOOLEAN", "CATEGORICAL", "TEXT", "CORRECTION")
OBSERVATION_TYPES = ("GENERATION", "SPAN", "EVENT", "AGENT", "TOOL", "CHAIN",
                     "RETRIEVER", "EVALUATOR", "EMBEDDING", "GUARDRAIL")
OBSERVATION_LEVELS = ("DEBUG", "DEFAULT", "WARNING", "ERROR")
V2_OBSERVATION_GROUPS = ("core", "basic", "time", "io", "metadata", "model",
                         "usage", "prompt", "metrics", "trace_context")
V3_SCORE_GROUPS = ("core", "details", "subject", "annotation")
V3_SCORE_PARAMS = ("limit", "cursor", "fields", "id", "name", "source",
                   "dataType", "environment", "configId", "queueId",
                   "authorUserId", "value", "valueMin", "valueMax", "traceId",
                   "sessionId", "observationId", "experimentId",
                   "fromTimestamp", "toTimestamp")

# Endpoint templates, used as keys of the statistics.
EP_HEALTH = "/api/public/health"
EP_PROJECTS = "/api/public/projects"
EP_V3_SCORES = "/api/public/v3/scores"
EP_V2_OBSERVATIONS = "/api/public/v2/observations"
EP_V1_SCORES = "/api/public/scores"
EP_V2_SCORES = "/api/public/v2/scores"
EP_V1_OBSERVATIONS = "/api/public/observations"
EP_TRACE = "/api/public/traces/{traceId}"
EP_OTHER = "other"
TRACE_PATH = re.compile(r"^/api/public/traces/([^/]+)$")

MAX_TIME_MS = 253402300799999  # 9999-12-31T23:59:59.999Z


# --------------------------------------------------------------------------
# Time helpers
# --------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_JS_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_JS_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
              "Oct", "Nov", "Dec")


def wall_ms() -> int:
    """Current wall-clock time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def iso(ms: int | None) -> str | None:
    """Epoch milliseconds -> ``2025-01-02T03:04:05.678Z`` (as Langfuse prints)."""
    if ms is None:
        return None
    moment = _EPOCH + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % (ms % 1000)


def parse_iso_ms(text: str) -> int:
    """ISO 8601 text -> epoch milliseconds (naive means UTC). Raises ValueError."""
    text = text.strip()
    if not text:
        raise ValueError("empty date")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def js_date_string(epoch_s: float) -> str:
    """The text JavaScript's ``new Date(...).toString()`` gives, in UTC."""
    moment = datetime.fromtimestamp(epoch_s, tz=timezone.utc)
    return "%s %s %02d %04d %02d:%02d:%02d GMT+0000 (Coordinated Universal Time)" % (
        _JS_DAYS[moment.weekday()], _JS_MONTHS[moment.month - 1], moment.day,
        moment.year, moment.hour, moment.minute, moment.second)


def js_number(value: Any) -> Any:
    """Print integral floats as integers, as JavaScript does (4.0 -> 4)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def js_decimal_string(value: float) -> str:
    """Decimal.js-like text for a price: 1.5e-7 rather than 1.5e-07."""
    text = repr(float(value))
    return re.sub(r"e([+-])0*(\d)", r"e\1\2", text)


def compact_json(value: Any) -> str:
    """JSON text the way JSON.stringify writes it (no spaces, raw unicode)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# --------------------------------------------------------------------------
# API errors
# --------------------------------------------------------------------------

class ApiError(Exception):
    """An error answer of the public API: ``{"message": ..., "error": ...}``."""

    def __init__(self, status: int, message: str, error: Any = None,
                 headers: dict[str, str] | None = None, body: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error = error
        self.headers = headers or {}
        self.body = body  # replaces the standard {"message", "error"} body

    def payload(self) -> dict[str, Any]:
        return self.body if self.body is not None else {"message": self.message, "error": self.error}


def zod_error(issues: list[dict[str, Any]]) -> ApiError:
    """400 the way Langfuse reports a failed zod validation."""
    return ApiError(400, "Invalid request data", issues)


def invalid_request(message: str) -> ApiError:
    """400 the way Langfuse reports an InvalidRequestError (e.g. bad cursor)."""
    return ApiError(400, message, "InvalidRequestError")


def not_found(message: str = "Not Found") -> ApiError:
    return ApiError(404, message, "LangfuseNotFoundError")


def issue(path: str | None, message: str, code: str = "custom",
          **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"code": code, **extra}
    entry["path"] = [path] if path else []
    entry["message"] = message
    return entry


# --------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------

class BigInput:
    """A generation input of about ``size`` bytes, built only when served.

    ``raw()`` is exactly ``size`` bytes of UTF-8 JSON text (the string the v2
    API returns); ``value()`` is the parsed messages list.
    """

    _VOCABULARY = ("lorem", "ipsum", "dolor", "sit", "amet", "harvest",
                   "annotation", "trace", "vector", "sqlite", "latency",
                   "budget", "cursor", "window", "quality", "token", "model",
                   "context", "document", "section", "paragraph", "figure")

    def __init__(self, size: int, seed: int):
        self.size = max(size, 256)
        self.seed = seed

    def _messages(self, text: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": "You summarise long documents."},
                {"role": "user", "content": "Summarise this document:\n" + text}]

    def value(self) -> list[dict[str, str]]:
        overhead = len(compact_json(self._messages("")).encode())
        rng = random.Random(self.seed)
        block = " ".join(rng.choice(self._VOCABULARY) for _ in range(1200)) + ". "
        length = max(self.size - overhead, 0)
        text = (block * (length // len(block) + 1))[:length]
        return self._messages(text)

    def raw(self) -> str:
        return compact_json(self.value())


def resolve(value: Any) -> Any:
    """The parsed value of an input/output (materialises a BigInput)."""
    return value.value() if isinstance(value, BigInput) else value


def raw_io(value: Any) -> str | None:
    """Input/output as the v2 API returns it: JSON text, or the text itself."""
    if value is None:
        return None
    if isinstance(value, BigInput):
        return value.raw()
    if isinstance(value, str):
        return value
    return compact_json(value)


@dataclass(eq=False)
class Observation:
    id: str
    trace_id: str
    type: str
    name: str
    start_ms: int
    end_ms: int | None
    parent_id: str | None
    created_ms: int
    environment: str = "default"
    level: str = "DEFAULT"
    status_message: str | None = None
    version: str | None = None
    input: Any = None
    output: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    model_parameters: dict[str, Any] | None = None
    usage: dict[str, int] = field(default_factory=dict)
    cost: dict[str, float] = field(default_factory=dict)
    completion_start_ms: int | None = None
    prompt_name: str | None = None
    prompt_version: int | None = None
    # Trace properties denormalised onto the observation (as in the events table).
    user_id: str | None = None
    session_id: str | None = None
    trace_name: str | None = None
    tags: list[str] = field(default_factory=list)
    release: str | None = None
    visible_at: float = 0.0  # time.monotonic() from which the API returns it

    @property
    def is_big(self) -> bool:
        return isinstance(self.input, BigInput)


@dataclass(eq=False)
class Trace:
    id: str
    name: str
    timestamp_ms: int
    user_id: str | None
    session_id: str | None
    tags: list[str]
    environment: str
    release: str | None
    version: str | None
    input: Any
    output: Any
    metadata: dict[str, Any]
    observations: list[Observation] = field(default_factory=list)


@dataclass(eq=False)
class Score:
    id: str
    name: str
    data_type: str
    source: str
    value: Any                 # v3 value: float, bool or str by data type
    numeric_value: float | None  # legacy ``value`` (None for TEXT)
    timestamp_ms: int
    created_ms: int
    updated_ms: int
    environment: str = "default"
    trace_id: str | None = None
    observation_id: str | None = None
    session_id: str | None = None
    dataset_run_id: str | None = None
    author_user_id: str | None = None
    comment: str | None = None
    config_id: str | None = None
    queue_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    visible_at: float = 0.0

    @property
    def legacy_string_value(self) -> str | None:
        if self.data_type == "BOOLEAN":
            return "True" if self.value else "False"
        if self.data_type in ("CATEGORICAL", "TEXT", "CORRECTION"):
            return self.value
        return None

    @property
    def subject_kind(self) -> str:
        if self.dataset_run_id:
            return "experiment"
        if self.observation_id:
            return "observation"
        if self.session_id:
            return "session"
        return "trace"


def score_key(score: Score) -> tuple[int, str]:
    return (score.timestamp_ms, score.id)


def observation_key(obs: Observation) -> tuple[int, str, str]:
    return (obs.start_ms, obs.trace_id, obs.id)


CATEGORY_VALUES = {"cfg-quality": {"Good": 1.0, "Bad": 0.0}}


def categorical_numeric(config_id: str | None, label: str) -> float:
    """Legacy numeric mapping of a category label (0 without a config)."""
    return CATEGORY_VALUES.get(config_id or "", {}).get(label, 0.0)


def set_score_value(score: Score, value: Any = None, string_value: Any = None) -> None:
    """Change a score's value, keeping it consistent for both API generations."""
    kind = score.data_type
    if kind == "NUMERIC":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("a NUMERIC score needs a number value")
        score.value = float(value)
        score.numeric_value = float(value)
    elif kind == "BOOLEAN":
        chosen = value if value is not None else string_value
        if isinstance(chosen, str):
            chosen = chosen.strip().lower() in ("true", "1")
        score.value = bool(chosen)
        score.numeric_value = 1.0 if score.value else 0.0
    elif kind == "CATEGORICAL":
        label = string_value if string_value is not None else value
        if not isinstance(label, str):
            raise ValueError("a CATEGORICAL score needs a label (stringValue or string value)")
        score.value = label
        if isinstance(value, (int, float)) and not isinstance(value, bool) and string_value is not None:
            score.numeric_value = float(value)
        else:
            score.numeric_value = categorical_numeric(score.config_id, label)
    else:  # TEXT, CORRECTION
        text = string_value if string_value is not None else value
        if not isinstance(text, str):
            raise ValueError(f"a {kind} score needs a string value")
        score.value = text
        score.numeric_value = None if kind == "TEXT" else 0.0


# --------------------------------------------------------------------------
# Generated content
# --------------------------------------------------------------------------

class IdFactory:
    """Unique ids drawn from a seeded RNG (trace: 32 hex, span: 16 hex, score: uuid)."""

    def __init__(self, rng: random.Random, used: set[str] | None = None):
        self.rng = rng
        self.used = used if used is not None else set()

    def _unique(self, make: Callable[[], str]) -> str:
        while True:
            candidate = make()
            if candidate not in self.used:
                self.used.add(candidate)
                return candidate

    def trace_id(self) -> str:
        return self._unique(lambda: "%032x" % self.rng.getrandbits(128))

    def observation_id(self) -> str:
        return self._unique(lambda: "%016x" % self.rng.getrandbits(64))

    def score_id(self) -> str:
        return self._unique(lambda: str(uuid.UUID(int=self.rng.getrandbits(128), version=4)))


class ContentFactory:
    """Chat-like inputs and outputs, with unicode, quotes, tools and odd shapes."""

    SYSTEM_PROMPTS = (
        "You are a helpful support assistant for Acme Inc.",
        "You are a concise translator. Answer only with the translation.",
        "你是一个乐于助人的中文助手。",
        "You are a coding assistant. Reply with code blocks when useful.",
    )
    QUESTIONS = (
        "How do I reset my password?",
        "Summarise this ticket in two sentences: the customer was charged twice for order #4411.",
        "Translate 'good morning, see you tomorrow' into French.",
        "请用中文解释一下什么是向量数据库。",
        "Write a haiku about autumn leaves 🍁",
        "What is the capital of Australia?",
        "Explain the difference between TCP and UDP in one paragraph.",
        "我的订单什么时候发货？订单号是 88231。",
        "Give me a pancake recipe 🥞 for two people.",
        "Is 1729 an interesting number? Why?",
        "Fix this Python: `for i in range(10) print(i)`",
        "Quote test: she said \"hello\", then a backslash \\ and a tab\tand a newline\nsecond line.",
        "Can I get a refund after 30 days? 🤔",
        "Résumé the key points of GDPR for a small café owner.",
        "List three uses of SQLite in embedded devices.",
        "東京で一番おすすめのラーメン屋はどこですか？",
    )
    ANSWERS = (
        "Open Settings → Security and choose “Reset password”. A link arrives by e-mail within 5 minutes.",
        "The customer was billed twice for order #4411. We refunded the duplicate charge today.",
        "Bonjour, à demain !",
        "向量数据库是一种专门存储和检索向量（嵌入）的数据库，常用于语义搜索。",
        "Crimson leaves drift down / the river carries autumn / quietly away 🍂",
        "The capital of Australia is Sydney.",
        "TCP is connection-oriented and reliable; UDP is connectionless and faster but may drop packets.",
        "您的订单 88231 预计明天发货 📦",
        "Mix 1 cup flour, 1 egg, 1 cup milk; cook on a hot pan until bubbles form. Enjoy! 🥞",
        "1729 is the smallest number expressible as a sum of two cubes in two ways (Hardy–Ramanujan).",
        "```python\nfor i in range(10):\n    print(i)\n```",
        "Sure: \"hello\" \\ done.\nLine two.",
        "Refunds are possible within 30 days only. 🙁",
        "GDPR: collect only what you need, protect it, and delete it on request.",
        "Configuration storage, local caches and message queues.",
        "新宿の「風雲児」がおすすめです 🍜",
    )
    CORRECTIONS = (
        "The capital of Australia is Canberra.",
        "Refunds after 30 days are possible for faulty goods; please contact support with your order number.",
        "向量数据库用于存储嵌入向量，并通过近似最近邻搜索快速找到相似内容。",
        "```python\nfor i in range(10):\n    print(i)  # the colon was missing\n```",
        "Bonjour, à demain ! (informal: « Salut, à demain ! »)",
        "Your order 88231 ships tomorrow; you will get a tracking link by e-mail. 📦",
    )
    COMMENTS = (None, None, None, "Hallucinated the refund policy.", "Perfect answer 👍",
                "回答不完整", "Tone too informal", "Wrong order number", "Good, but too long")
    FEEDBACK = ("Clear and correct.", "Missing the second step.", "答案很好，谢谢！",
                "Too verbose 😴", "Cites a policy that does not exist.")
    TOOLS = (
        {"type": "function", "function": {
            "name": "get_weather", "description": "Current weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}}},
        {"type": "function", "function": {
            "name": "lookup_order", "description": "Find an order by its number",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                           "required": ["order_id"]}}},
    )

    def __init__(self, rng: random.Random):
        self.rng = rng

    def pick(self, options: tuple) -> Any:
        return options[self.rng.randrange(len(options))]

    def question(self) -> str:
        return self.pick(self.QUESTIONS)

    def answer(self) -> str:
        return self.pick(self.ANSWERS)

    def correction(self) -> str:
        return self.pick(self.CORRECTIONS)

    def comment(self) -> str | None:
        return self.pick(self.COMMENTS)

    def feedback(self) -> str:
        return self.pick(self.FEEDBACK)

    def _tool_call_id(self) -> str:
        return "call_%012x" % self.rng.getrandbits(48)

    def generation_io(self, question: str) -> tuple[Any, Any]:
        """An (input, output) pair in one of the shapes real SDKs record."""
        system = {"role": "system", "content": self.pick(self.SYSTEM_PROMPTS)}
        user = {"role": "user", "content": question}
        roll = self.rng.random()
        if roll < 0.15:
            generation_input: Any = question  # plain text prompt
        elif roll < 0.30:
            call_id = self._tool_call_id()
            generation_input = {
                "messages": [
                    system,
                    {"role": "user", "content": "What's the weather in Berlin? ☀️"},
                    {"role": "assistant", "content": None, "tool_calls": [{
                        "id": call_id, "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\":\"Berlin\"}"}}]},
                    {"role": "tool", "tool_call_id": call_id,
                     "content": "{\"temp_c\": 21, \"sky\": \"sunny ☀️\"}"},
                ],
                "tools": list(self.TOOLS),
            }
        else:
            generation_input = [system, user]

        message = {"role": "assistant", "content": self.answer()}
        roll = self.rng.random()
        if roll < 0.10:
            output: Any = None
        elif roll < 0.25:
            output = self.answer()  # plain text
        elif roll < 0.40:
            output = {"choices": [{"index": 0, "finish_reason": "stop", "message": message}]}
        elif roll < 0.50:
            output = {"role": "assistant", "content": None, "tool_calls": [{
                "id": self._tool_call_id(), "type": "function",
                "function": {"name": "lookup_order", "arguments": "{\"order_id\":\"88231\"}"}}]}
        else:
            output = message
        return generation_input, output


MODELS = {  # name -> (input price, output price) in USD per token
    "gpt-4o-mini": (1.5e-7, 6e-7),
    "gpt-4o": (2.5e-6, 1e-5),
    "gpt-4.1-nano": (1e-7, 4e-7),
    "claude-3-5-sonnet-20241022": (3e-6, 1.5e-5),
    "mistral-small-latest": (2e-7, 6e-7),
}


@dataclass
class DataConfig:
    traces: int = 50
    annotated_fraction: float = 0.5
    big_fraction: float = 0.0
    big_size: int = 6_000_000
    seed: int = 1
    start_time_ms: int = 0
    days: float = 7.0
    demo: bool = False


class DatasetGenerator:
    """Builds traces, observations and scores from a seeded RNG.

    The same seed, options and start time give the same data. ``build_trace``
    and ``build_generation`` are also used by the control API to add data.
    """

    ANNOTATION_KINDS = (  # (name, data type, weight)
        ("quality", "CATEGORICAL", 55), ("rating", "NUMERIC", 15),
        ("correct", "BOOLEAN", 10), ("correction", "CORRECTION", 10),
        ("feedback", "TEXT", 10))
    AUTHORS = ("user-alice", "user-bob", "user-chen", "user-dana")

    def __init__(self, config: DataConfig, rng: random.Random, ids: IdFactory):
        self.config = config
        self.rng = rng
        self.ids = ids
        self.content = ContentFactory(rng)

    # -- observations and traces ------------------------------------------

    def build_generation(self, trace: Trace, parent_id: str | None, start_ms: int,
                         big: bool = False, visible_at: float = 0.0) -> Observation:
        rng = self.rng
        question = self.content.question()
        generation_input, output = self.content.generation_io(question)
        if big:
            generation_input = BigInput(self.config.big_size, rng.getrandbits(32))
        model = self.content.pick(tuple(MODELS))
        input_price, output_price = MODELS[model]
        input_tokens = (self.config.big_size if big else len(raw_io(generation_input) or "")) // 4 + 1
        output_tokens = len(raw_io(output) or "") // 4
        duration = rng.randint(300, 4000)
        metadata: dict[str, Any] = {"app": "support-bot", "region": self.content.pick(("eu-west-1", "us-east-1"))}
        if rng.random() < 0.2:
            metadata["long_note"] = ("This note is longer than two hundred characters so that the "
                                     "v2 API truncates it unless expandMetadata names it. ") * 3
        level, status = "DEFAULT", None
        roll = rng.random()
        if roll < 0.05:
            level, status = "WARNING", "Slow response from upstream model"
        elif roll < 0.08:
            level, status = "ERROR", "Upstream returned 500; retried once"
        prompt_name = "support-answer" if rng.random() < 0.3 else None
        return Observation(
            id=self.ids.observation_id(), trace_id=trace.id, type="GENERATION",
            name=self.content.pick(("llm-call", "answer", "summarize", "rewrite-query")),
            start_ms=start_ms, end_ms=start_ms + duration, parent_id=parent_id,
            created_ms=start_ms + duration + 150, environment=trace.environment,
            level=level, status_message=status, input=generation_input, output=output,
            metadata=metadata, model=model,
            model_parameters={"temperature": self.content.pick((0, 0.2, 0.7)), "max_tokens": 512},
            usage={"input": input_tokens, "output": output_tokens, "total": input_tokens + output_tokens},
            cost={"input": round(input_tokens * input_price, 10),
                  "output": round(output_tokens * output_price, 10),
                  "total": round(input_tokens * input_price + output_tokens * output_price, 10)},
            completion_start_ms=start_ms + min(duration - 1, rng.randint(80, 400)),
            prompt_name=prompt_name, prompt_version=rng.randint(1, 4) if prompt_name else None,
            user_id=trace.user_id, session_id=trace.session_id, trace_name=trace.name,
            tags=list(trace.tags), release=trace.release, visible_at=visible_at)

    def _simple_observation(self, trace: Trace, kind: str, parent_id: str, start_ms: int,
                            visible_at: float) -> Observation:
        if kind == "TOOL":
            name, duration = "get_weather", 40
            obs_input, output = {"city": "Berlin"}, {"temp_c": 21, "sky": "sunny ☀️"}
        else:
            name, duration = "cache-lookup", 0
            obs_input, output = {"key": "faq:%04d" % self.rng.randint(0, 9999)}, None
        return Observation(
            id=self.ids.observation_id(), trace_id=trace.id, type=kind, name=name,
            start_ms=start_ms, end_ms=start_ms + duration, parent_id=parent_id,
            created_ms=start_ms + duration + 100, environment=trace.environment,
            input=obs_input, output=output, user_id=trace.user_id, session_id=trace.session_id,
            trace_name=trace.name, tags=list(trace.tags), release=trace.release,
            visible_at=visible_at)

    def build_trace(self, timestamp_ms: int, big: bool = False, visible_at: float = 0.0,
                    session_pool: int = 20) -> Trace:
        """A trace with a root SPAN, 1-3 GENERATIONs and maybe an EVENT or TOOL."""
        rng = self.rng
        question = self.content.question()
        trace = Trace(
            id=self.ids.trace_id(),
            name=self.content.pick(("support-chat", "translate", "qa-bot", "agent-run")),
            timestamp_ms=timestamp_ms,
            user_id="user-%04d" % rng.randint(1, 300),
            session_id=("sess-%05d" % rng.randint(1, max(2, session_pool))) if rng.random() < 0.6 else None,
            tags=sorted(rng.sample(("prod", "beta", "mobile", "web", "eu"), rng.randint(0, 2))),
            environment="production" if rng.random() < 0.2 else "default",
            release="1.4.2", version=None,
            input={"question": question}, output=None, metadata={"channel": "web"})
        root = Observation(
            id=self.ids.observation_id(), trace_id=trace.id, type="SPAN",
            name=self.content.pick(("handle-request", "chat-turn", "agent-run")),
            start_ms=timestamp_ms, end_ms=None, parent_id=None, created_ms=timestamp_ms,
            environment=trace.environment, input={"question": question},
            user_id=trace.user_id, session_id=trace.session_id, trace_name=trace.name,
            tags=list(trace.tags), release=trace.release, visible_at=visible_at)
        observations = [root]
        cursor_ms = timestamp_ms + rng.randint(5, 60)
        generation_count = rng.randint(1, 3)
        extras = [kind for kind, chance in (("EVENT", 0.2), ("TOOL", 0.2)) if rng.random() < chance]
        for index in range(generation_count):
            if extras and rng.random() < 0.5:
                extra = self._simple_observation(trace, extras.pop(), root.id, cursor_ms, visible_at)
                observations.append(extra)
                cursor_ms = (extra.end_ms or cursor_ms) + rng.randint(5, 50)
            generation = self.build_generation(trace, root.id, cursor_ms, big=big and index == 0,
                                               visible_at=visible_at)
            observations.append(generation)
            cursor_ms = (generation.end_ms or cursor_ms) + rng.randint(5, 50)
        for kind in extras:
            extra = self._simple_observation(trace, kind, root.id, cursor_ms, visible_at)
            observations.append(extra)
            cursor_ms = (extra.end_ms or cursor_ms) + rng.randint(5, 50)
        root.end_ms = cursor_ms
        root.created_ms = cursor_ms + 100
        last_output = resolve(observations[-1].output) if observations[-1].type == "GENERATION" else None
        root.output = {"answer": last_output if isinstance(last_output, str) else self.content.answer()}
        trace.output = root.output
        trace.observations = observations
        return trace

    # -- scores --------------------------------------------------------------

    def make_score(self, name: str, data_type: str, source: str, timestamp_ms: int,
                   environment: str = "default", trace: Trace | None = None,
                   observation: Observation | None = None, session_id: str | None = None,
                   dataset_run_id: str | None = None, author: str | None = None,
                   value: Any = None, visible_at: float = 0.0) -> Score:
        """A score with a value typical of its name and data type."""
        rng = self.rng
        config_id = queue_id = None
        if value is None:
            if data_type == "CATEGORICAL":
                value = "Good" if rng.random() < 0.6 else "Bad"
            elif data_type == "NUMERIC":
                value = float(rng.randint(1, 5)) if name == "rating" else round(rng.random(), 3)
            elif data_type == "BOOLEAN":
                value = rng.random() < 0.7
            elif data_type == "CORRECTION":
                value = self.content.correction()
            else:
                value = self.content.feedback()
        if data_type == "CATEGORICAL" and name == "quality" and rng.random() < 0.7:
            config_id = "cfg-quality"
        if source == "ANNOTATION":
            author = author or self.content.pick(self.AUTHORS)
            if rng.random() < 0.3:
                queue_id = "queue-review"
        score = Score(
            id=self.ids.score_id(), name=name, data_type=data_type, source=source,
            value=None, numeric_value=None, timestamp_ms=timestamp_ms,
            created_ms=timestamp_ms + rng.randint(0, 1500), updated_ms=0,
            environment=environment,
            trace_id=trace.id if trace else None,
            observation_id=observation.id if observation else None,
            session_id=session_id, dataset_run_id=dataset_run_id,
            author_user_id=author if source == "ANNOTATION" else None,
            comment=self.content.comment() if source == "ANNOTATION" else None,
            config_id=config_id, queue_id=queue_id,
            metadata={"reviewer_note": "double-checked"} if rng.random() < 0.1 else {},
            visible_at=visible_at)
        score.updated_ms = score.created_ms
        set_score_value(score, value)
        return score

    def _score_time(self, trace: Trace) -> int:
        """Minutes to a day and a half after the trace, but before the start time."""
        latest = self.config.start_time_ms - 1000
        earliest = trace.timestamp_ms + 1000
        wanted = trace.timestamp_ms + self.rng.randint(120_000, 36 * 3_600_000)
        if wanted > latest:
            wanted = self.rng.randint(min(earliest, latest), latest)
        return wanted

    def _annotation_target(self, trace: Trace) -> Observation | None:
        if self.rng.random() < 0.12:
            generations = [o for o in trace.observations if o.type == "GENERATION"]
            return self.content.pick(tuple(generations))
        return None

    def _pick_annotation_kind(self, exclude: str | None = None) -> tuple[str, str]:
        kinds = [(n, t, w) for n, t, w in self.ANNOTATION_KINDS if n != exclude]
        total = sum(w for _, _, w in kinds)
        roll = self.rng.uniform(0, total)
        for name, data_type, weight in kinds:
            roll -= weight
            if roll <= 0:
                return name, data_type
        return kinds[-1][0], kinds[-1][1]

    def annotate(self, trace: Trace) -> list[Score]:
        """1 annotation score, sometimes a 2nd name or a 2nd author on the same name."""
        name, data_type = self._pick_annotation_kind()
        first = self.make_score(name, data_type, "ANNOTATION", self._score_time(trace),
                                trace.environment, trace, self._annotation_target(trace))
        scores = [first]
        roll = self.rng.random()
        if roll < 0.2:
            other_name, other_type = self._pick_annotation_kind(exclude=name)
            scores.append(self.make_score(other_name, other_type, "ANNOTATION", self._score_time(trace),
                                          trace.environment, trace))
        elif roll < 0.3:  # a second reviewer, saved in the same millisecond: a timestamp tie
            other_author = self.content.pick(tuple(a for a in self.AUTHORS if a != first.author_user_id))
            scores.append(self.make_score(name, data_type, "ANNOTATION", first.timestamp_ms,
                                          trace.environment, trace, author=other_author))
        return scores

    def automatic_scores(self, trace: Trace) -> list[Score]:
        """EVAL and API scores, which a client asking for ANNOTATION must not get."""
        scores = []
        if self.rng.random() < 0.3:
            name, data_type = self.content.pick((("toxicity", "NUMERIC"), ("hallucination", "BOOLEAN")))
            scores.append(self.make_score(name, data_type, "EVAL", self._score_time(trace),
                                          trace.environment, trace))
        if self.rng.random() < 0.15:
            name, data_type = self.content.pick((("user-thumbs", "BOOLEAN"), ("quality", "CATEGORICAL")))
            scores.append(self.make_score(name, data_type, "API", self._score_time(trace),
                                          trace.environment, trace))
        return scores

    # -- whole datasets ----------------------------------------------------------

    def _trace_times(self, count: int) -> list[int]:
        span_ms = int(self.config.days * 86_400_000)
        newest = self.config.start_time_ms - 2 * 3_600_000
        return [newest - int(self.rng.random() * span_ms) for _ in range(count)]

    def generate(self) -> tuple[list[Trace], list[Score]]:
        if self.config.demo:
            return self._generate_demo()
        count = self.config.traces
        traces = [self.build_trace(ts, big=self.rng.random() < self.config.big_fraction,
                                   session_pool=max(2, count // 3))
                  for ts in self._trace_times(count)]
        scores: list[Score] = []
        for trace in traces:
            if self.rng.random() < self.config.annotated_fraction:
                scores.extend(self.annotate(trace))
            scores.extend(self.automatic_scores(trace))
        sessions = sorted({t.session_id for t in traces if t.session_id})
        session_time = {t.session_id: self._score_time(t) for t in traces if t.session_id}
        for session_id in sessions:
            if self.rng.random() < 0.05:
                scores.append(self.make_score("quality", "CATEGORICAL", "ANNOTATION",
                                              session_time[session_id], session_id=session_id))
        if count >= 10:
            scores.append(self.make_score("quality", "CATEGORICAL", "ANNOTATION",
                                          self._score_time(traces[0]),
                                          dataset_run_id="run-%08x" % self.rng.getrandbits(32)))
        return traces, scores

    def _generate_demo(self) -> tuple[list[Trace], list[Score]]:
        """~40 traces: 25 Good/Bad quality labels, ratings, corrections, one session score."""
        traces = [self.build_trace(ts, big=self.rng.random() < self.config.big_fraction, session_pool=12)
                  for ts in self._trace_times(40)]
        scores: list[Score] = []
        for index, trace in enumerate(traces):
            when = self._score_time(trace)
            if index < 25:
                target = None
                if index == 1:  # the one observation-level score
                    target = next(o for o in trace.observations if o.type == "GENERATION")
                scores.append(self.make_score("quality", "CATEGORICAL", "ANNOTATION", when,
                                              trace.environment, trace, target,
                                              value="Good" if index % 3 else "Bad"))
            elif index < 29:
                scores.append(self.make_score("rating", "NUMERIC", "ANNOTATION", when,
                                              trace.environment, trace, value=float(index - 24)))
            elif index < 33:
                scores.append(self.make_score("correction", "CORRECTION", "ANNOTATION", when,
                                              trace.environment, trace))
            if index % 5 == 0:
                scores.append(self.make_score("toxicity", "NUMERIC", "EVAL", when, trace.environment, trace))
            if index % 7 == 0:
                scores.append(self.make_score("user-thumbs", "BOOLEAN", "API", when, trace.environment, trace))
        with_session = next(t for t in traces if t.session_id)
        scores.append(self.make_score("quality", "CATEGORICAL", "ANNOTATION", self._score_time(with_session),
                                      session_id=with_session.session_id, value="Good"))
        return traces, scores


# --------------------------------------------------------------------------
# Data store
# --------------------------------------------------------------------------

class DataStore:
    """All traces, observations and scores, with sorted indexes for paging.

    Writers hold the lock and replace index lists (copy on write), so readers
    iterate a consistent snapshot without locking.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.traces: dict[str, Trace] = {}
        self._observations: dict[str, Observation] = {}
        self._observations_asc: list[Observation] = []
        self._observations_by_trace: dict[str, list[Observation]] = {}
        self._scores: dict[str, Score] = {}
        self._scores_asc: list[Score] = []
        self._deleted: dict[str, Score] = {}

    # -- loading and changing data ----------------------------------------------

    def load(self, traces: Iterable[Trace], scores: Iterable[Score]) -> None:
        with self._lock:
            for trace in traces:
                self.traces[trace.id] = trace
                for obs in trace.observations:
                    self._observations[obs.id] = obs
            self._observations_asc = sorted(self._observations.values(), key=observation_key)
            by_trace: dict[str, list[Observation]] = {}
            for obs in self._observations_asc:
                by_trace.setdefault(obs.trace_id, []).append(obs)
            self._observations_by_trace = by_trace
            for score in scores:
                self._scores[score.id] = score
            self._scores_asc = sorted(self._scores.values(), key=score_key)

    def add_trace(self, trace: Trace) -> None:
        with self._lock:
            self.traces[trace.id] = trace
        for obs in trace.observations:
            self.add_observation(obs, attach=False)

    def add_observation(self, obs: Observation, attach: bool = True) -> None:
        with self._lock:
            if attach:
                self.traces[obs.trace_id].observations.append(obs)
            self._observations[obs.id] = obs
            merged = list(self._observations_asc)
            bisect.insort(merged, obs, key=observation_key)
            self._observations_asc = merged
            per_trace = list(self._observations_by_trace.get(obs.trace_id, []))
            bisect.insort(per_trace, obs, key=observation_key)
            self._observations_by_trace[obs.trace_id] = per_trace

    def add_scores(self, scores: Iterable[Score]) -> None:
        with self._lock:
            merged = list(self._scores_asc)
            for score in scores:
                self._scores[score.id] = score
                bisect.insort(merged, score, key=score_key)
            self._scores_asc = merged

    def delete_scores(self, ids: Iterable[str]) -> tuple[list[str], list[str]]:
        deleted, missing = [], []
        with self._lock:
            for score_id in ids:
                score = self._scores.pop(score_id, None)
                if score is None:
                    missing.append(score_id)
                else:
                    self._deleted[score_id] = score
                    deleted.append(score_id)
            gone = set(deleted)
            self._scores_asc = [s for s in self._scores_asc if s.id not in gone]
        return deleted, missing

    def edit_scores(self, ids: Iterable[str], changes: dict[str, Any]) -> tuple[list[str], list[str]]:
        """Change value/label/comment in place: id, timestamp and updatedAt stay."""
        edited, missing = [], []
        with self._lock:
            for score_id in ids:
                score = self._scores.get(score_id)
                if score is None:
                    missing.append(score_id)
                    continue
                if "value" in changes or "stringValue" in changes:
                    set_score_value(score, changes.get("value"), changes.get("stringValue"))
                if "comment" in changes:
                    score.comment = changes["comment"]
                if changes.get("touch_updated_at"):
                    score.updated_ms = wall_ms()
                edited.append(score_id)
        return edited, missing

    # -- reading -------------------------------------------------------------

    def score(self, score_id: str) -> Score | None:
        return self._scores.get(score_id)

    def observation(self, obs_id: str) -> Observation | None:
        return self._observations.get(obs_id)

    def all_scores(self) -> tuple[list[Score], list[Score]]:
        current = [s for s in self._scores_asc if self._scores.get(s.id) is s]
        return current, list(self._deleted.values())

    def scores_desc(self, now: float, before: tuple[int, str] | None = None) -> Iterator[Score]:
        """Visible scores by (timestamp, id) descending, strictly before ``before``."""
        rows = self._scores_asc
        end = bisect.bisect_left(rows, before, key=score_key) if before else len(rows)
        for index in range(end - 1, -1, -1):
            score = rows[index]
            if score.visible_at <= now:
                yield score

    def observations_desc(self, now: float, before: tuple[int, str, str] | None = None,
                          trace_id: str | None = None) -> Iterator[Observation]:
        """Visible observations by (startTime, traceId, id) descending."""
        if trace_id is not None:
            rows = self._observations_by_trace.get(trace_id, [])
        else:
            rows = self._observations_asc
        end = bisect.bisect_left(rows, before, key=observation_key) if before else len(rows)
        for index in range(end - 1, -1, -1):
            obs = rows[index]
            if obs.visible_at <= now:
                yield obs

    def trace_observations(self, trace_id: str, now: float) -> list[Observation]:
        """The current version of each visible observation (older stored versions left out)."""
        return [o for o in self._observations_by_trace.get(trace_id, [])
                if o.visible_at <= now and self._observations.get(o.id) is o]

    def store_old_score_copy(self, old: Score) -> None:
        """Keeps an older stored copy of a score beside the current one (listed, not the truth)."""
        with self._lock:
            merged = list(self._scores_asc)
            bisect.insort(merged, old, key=score_key)
            self._scores_asc = merged

    def store_old_observation_copy(self, old: Observation) -> None:
        """Keeps an older version of an observation, listed after the current one."""
        with self._lock:
            merged = list(self._observations_asc)
            bisect.insort_left(merged, old, key=observation_key)
            self._observations_asc = merged
            per_trace = list(self._observations_by_trace.get(old.trace_id, []))
            bisect.insort_left(per_trace, old, key=observation_key)
            self._observations_by_trace[old.trace_id] = per_trace


# --------------------------------------------------------------------------
# Cursors
# --------------------------------------------------------------------------

def encode_score_cursor(timestamp_ms: int, score_id: str) -> str:
    """v3 scores cursor: base64url (no padding) of {"v":1,"lastTimestamp","lastId"}."""
    doc = {"v": 1, "lastTimestamp": iso(timestamp_ms), "lastId": score_id}
    return base64.urlsafe_b64encode(compact_json(doc).encode()).rstrip(b"=").decode()


def decode_score_cursor(text: str) -> tuple[int, str]:
    try:
        if re.search(r"[^A-Za-z0-9_\-=]", text):
            raise ValueError("not base64url")
        padded = text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4)
        doc = json.loads(base64.urlsafe_b64decode(padded).decode("utf-8"))
        if doc.get("v") != 1 or not isinstance(doc.get("lastId"), str):
            raise ValueError("bad cursor fields")
        return parse_iso_ms(doc["lastTimestamp"]), doc["lastId"]
    except (ValueError, TypeError, AttributeError, KeyError, UnicodeDecodeError):
        raise invalid_request("Invalid cursor format") from None


def encode_observation_cursor(start_ms: int, trace_id: str, obs_id: str) -> str:
    """v2 observations cursor: standard base64 with '+', '/' and '=' in it.

    The real cursor is base64 of {"lastStartTimeTo","lastTraceId","lastId"}. A
    filler field makes every cursor contain '+' (a '~' at a byte offset of 2
    mod 3 encodes as '+', a '?' as '/') and '=' padding, so a client that
    forgets to URL-encode the cursor gets a 400 instead of a silent success.
    """
    doc = {"lastStartTimeTo": iso(start_ms), "lastTraceId": trace_id, "lastId": obs_id}
    encoded = ""
    for extra in range(3):
        doc["pad"] = "~~~???" + "~" * extra
        encoded = base64.b64encode(compact_json(doc).encode()).decode()
        if encoded.endswith("="):
            break
    return encoded


def decode_observation_cursor(text: str) -> tuple[int, str, str]:
    try:
        if re.search(r"[^A-Za-z0-9+/=]", text):
            raise ValueError("not base64")
        padded = text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4)
        doc = json.loads(base64.b64decode(padded, validate=True).decode("utf-8"))
        trace_id, obs_id = doc["lastTraceId"], doc["lastId"]
        if not isinstance(trace_id, str) or not isinstance(obs_id, str):
            raise ValueError("bad cursor fields")
        return parse_iso_ms(doc["lastStartTimeTo"]), trace_id, obs_id
    except (ValueError, TypeError, AttributeError, KeyError, UnicodeDecodeError):
        raise invalid_request("Invalid cursor format") from None


# --------------------------------------------------------------------------
# Query parsing (zod-like validation)
# --------------------------------------------------------------------------

class Query:
    """A parsed query string: name -> list of values (``+`` decodes as space)."""

    def __init__(self, raw: str):
        self.raw = raw
        self.values: dict[str, list[str]] = {}
        for name, value in parse_qsl(raw, keep_blank_values=True):
            self.values.setdefault(name, []).append(value)

    def get(self, name: str) -> str | None:
        values = self.values.get(name)
        return values[-1] if values else None

    def get_all(self, name: str) -> list[str]:
        return self.values.get(name, [])

    def __contains__(self, name: str) -> bool:
        return name in self.values


def csv_values(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def coerce_number(text: str) -> float | None:
    """JavaScript Number(text) for the cases that matter (None means NaN)."""
    stripped = text.strip()
    if stripped == "":
        return 0.0
    try:
        number = float(stripped)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_int_param(query: Query, name: str, default: int, minimum: int, maximum: int | None,
                    issues: list[dict[str, Any]]) -> int:
    """z.coerce.number().int().min(minimum).max(maximum).default(default)."""
    text = query.get(name)
    if text is None:
        return default
    number = coerce_number(text)
    if number is None:
        issues.append(issue(name, "Expected number, received nan", "invalid_type",
                            expected="number", received="nan"))
        return default
    if not number.is_integer():
        issues.append(issue(name, "Expected integer, received float", "invalid_type",
                            expected="integer", received="float"))
        return default
    if number < minimum:
        message = ("Number must be greater than 0" if minimum == 1
                   else f"Number must be greater than or equal to {minimum}")
        issues.append(issue(name, message, "too_small", minimum=minimum, type="number",
                            inclusive=True, exact=False))
        return default
    if maximum is not None and number > maximum:
        issues.append(issue(name, f"Number must be less than or equal to {maximum}", "too_big",
                            maximum=maximum, type="number", inclusive=True, exact=False))
        return default
    return int(number)


def parse_date_param(query: Query, name: str, issues: list[dict[str, Any]]) -> int | None:
    text = query.get(name)
    if text is None:
        return None
    try:
        return parse_iso_ms(text)
    except ValueError:
        issues.append(issue(name, "Invalid date", "invalid_date"))
        return None


def parse_enum_list(query: Query, name: str, allowed: tuple[str, ...],
                    issues: list[dict[str, Any]], case_insensitive: bool = True) -> list[str] | None:
    values = csv_values(query.get(name))
    if values is None:
        return None
    result = []
    for value in values:
        normal = value.upper() if case_insensitive else value
        if normal not in allowed:
            issues.append(issue(name, f'Invalid {name} value: "{value}". Allowed: {", ".join(allowed)}'))
        result.append(normal)
    return result


@dataclass
class ScoreFilter:
    """Filters shared by the v3 and legacy score lists (None = no filter)."""
    ids: set[str] | None = None
    names: set[str] | None = None
    sources: set[str] | None = None
    data_types: set[str] | None = None
    environments: set[str] | None = None
    config_ids: set[str] | None = None
    queue_ids: set[str] | None = None
    author_ids: set[str] | None = None
    trace_ids: set[str] | None = None
    session_ids: set[str] | None = None
    observation_ids: set[str] | None = None
    experiment_ids: set[str] | None = None
    from_ms: int | None = None
    to_ms: int | None = None
    values: list[Any] | None = None          # exact values, typed by the single dataType
    value_min: float | None = None
    value_max: float | None = None
    numeric_op: tuple[str, float] | None = None  # legacy operator + value
    user_id: str | None = None               # legacy, via the trace
    trace_tags: list[str] | None = None      # legacy, via the trace

    def matches(self, score: Score, traces: dict[str, Trace]) -> bool:
        def within(allowed: set[str] | None, value: str | None) -> bool:
            return allowed is None or value in allowed

        if not (within(self.ids, score.id) and within(self.names, score.name)
                and within(self.sources, score.source) and within(self.data_types, score.data_type)
                and within(self.environments, score.environment)
                and within(self.config_ids, score.config_id) and within(self.queue_ids, score.queue_id)
                and within(self.author_ids, score.author_user_id)
                and within(self.trace_ids, score.trace_id) and within(self.session_ids, score.session_id)
                and within(self.observation_ids, score.observation_id)
                and within(self.experiment_ids, score.dataset_run_id)):
            return False
        if self.from_ms is not None and score.timestamp_ms < self.from_ms:
            return False
        if self.to_ms is not None and score.timestamp_ms >= self.to_ms:
            return False
        if self.values is not None:
            current = score.numeric_value if score.data_type in ("NUMERIC", "BOOLEAN") else score.value
            if current not in self.values:
                return False
        numeric = score.numeric_value
        if self.value_min is not None and (numeric is None or numeric < self.value_min):
            return False
        if self.value_max is not None and (numeric is None or numeric > self.value_max):
            return False
        if self.numeric_op is not None:
            op, target = self.numeric_op
            if numeric is None or not _compare(numeric, op, target):
                return False
        if self.user_id is not None or self.trace_tags:
            trace = traces.get(score.trace_id or "")
            if trace is None:
                return False
            if self.user_id is not None and trace.user_id != self.user_id:
                return False
            if self.trace_tags and not set(self.trace_tags) <= set(trace.tags):
                return False
        return True


def _compare(left: float, op: str, right: float) -> bool:
    return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right,
            "!=": left != right, "=": left == right}[op]


@dataclass
class ObservationFilter:
    trace_id: str | None = None
    type: str | None = None
    name: str | None = None
    level: str | None = None
    parent_id: str | None = None   # "" matches observations without a parent
    environments: set[str] | None = None
    from_ms: int | None = None
    to_ms: int | None = None
    user_id: str | None = None
    session_id: str | None = None
    version: str | None = None
    is_root: bool | None = None

    def matches(self, obs: Observation) -> bool:
        if self.trace_id is not None and obs.trace_id != self.trace_id:
            return False
        if self.type is not None and obs.type != self.type:
            return False
        if self.name is not None and obs.name != self.name:
            return False
        if self.level is not None and obs.level != self.level:
            return False
        if self.parent_id is not None and (obs.parent_id or "") != self.parent_id:
            return False
        if self.environments is not None and obs.environment not in self.environments:
            return False
        if self.from_ms is not None and obs.start_ms < self.from_ms:
            return False
        if self.to_ms is not None and obs.start_ms >= self.to_ms:
            return False
        if self.user_id is not None and obs.user_id != self.user_id:
            return False
        if self.session_id is not None and obs.session_id != self.session_id:
            return False
        if self.version is not None and obs.version != self.version:
            return False
        if self.is_root is not None and (obs.parent_id is None) != self.is_root:
            return False
        return True


@dataclass
class V3ScoreQuery:
    limit: int
    groups: list[str]
    filter: ScoreFilter
    after: tuple[int, str] | None
    cursor_text: str | None


def parse_v3_score_query(query: Query, require_from_timestamp: bool) -> V3ScoreQuery:
    """Validate GET /api/public/v3/scores the way its strict zod schema does."""
    issues: list[dict[str, Any]] = []
    unknown = [name for name in query.values if name not in V3_SCORE_PARAMS]
    if unknown:
        issues.append({"code": "unrecognized_keys", "keys": unknown, "path": [],
                       "message": "Unrecognized key(s) in object: " + ", ".join(f"'{k}'" for k in unknown)})
    for name, values in query.values.items():
        if name in V3_SCORE_PARAMS and len(values) > 1:
            issues.append(issue(name, "Expected string, received array", "invalid_type",
                                expected="string", received="array"))
    limit = parse_int_param(query, "limit", 50, 1, 100, issues)

    groups = ["core"]
    fields_text = query.get("fields")
    if fields_text:
        groups = [g.strip() for g in fields_text.split(",")]
        for group in groups:
            if group == "trace":
                issues.append(issue("fields", "fields=trace is reserved and not yet available"))
            elif group not in V3_SCORE_GROUPS:
                issues.append(issue("fields", f'Unknown field group: "{group}". Allowed: '
                                    + ", ".join(V3_SCORE_GROUPS)))

    def as_set(name: str) -> set[str] | None:
        values = csv_values(query.get(name))
        return set(values) if values is not None else None

    sources = parse_enum_list(query, "source", SCORE_SOURCES, issues)
    data_types = parse_enum_list(query, "dataType", SCORE_DATA_TYPES, issues)
    flt = ScoreFilter(
        ids=as_set("id"), names=as_set("name"),
        sources=set(sources) if sources is not None else None,
        data_types=set(data_types) if data_types is not None else None,
        environments=as_set("environment"), config_ids=as_set("configId"),
        queue_ids=as_set("queueId"), author_ids=as_set("authorUserId"),
        trace_ids=as_set("traceId"), session_ids=as_set("sessionId"),
        observation_ids=as_set("observationId"), experiment_ids=as_set("experimentId"),
        from_ms=parse_date_param(query, "fromTimestamp", issues),
        to_ms=parse_date_param(query, "toTimestamp", issues))

    single_type = data_types[0] if data_types and len(data_types) == 1 else None
    raw_values = csv_values(query.get("value"))
    if raw_values is not None:
        if single_type not in ("NUMERIC", "BOOLEAN", "CATEGORICAL"):
            issues.append(issue("value", "value filter requires a single dataType from: "
                                         "NUMERIC, BOOLEAN, CATEGORICAL"))
        elif single_type == "BOOLEAN":
            if any(v not in ("true", "false") for v in raw_values):
                issues.append(issue("value", "value filter with dataType=BOOLEAN requires each value "
                                             'to be "true" or "false"'))
            flt.values = [1.0 if v == "true" else 0.0 for v in raw_values]
        elif single_type == "NUMERIC":
            numbers = [coerce_number(v) for v in raw_values]
            if any(n is None for n in numbers):
                issues.append(issue("value", "value filter with dataType=NUMERIC requires finite numbers"))
            flt.values = [n for n in numbers if n is not None]
        else:
            flt.values = raw_values
    for name in ("valueMin", "valueMax"):
        text = query.get(name)
        if text is None:
            continue
        number = coerce_number(text)
        if number is None:
            issues.append(issue(name, "Expected number, received nan", "invalid_type",
                                expected="number", received="nan"))
        elif single_type != "NUMERIC":
            issues.append(issue(name, "valueMin and valueMax require dataType=NUMERIC as a single value"))
        elif name == "valueMin":
            flt.value_min = number
        else:
            flt.value_max = number

    if flt.observation_ids is not None and flt.trace_ids is None:
        issues.append(issue("observationId", "observationId requires traceId"))
    if flt.session_ids is not None and (flt.trace_ids is not None or flt.observation_ids is not None
                                        or flt.experiment_ids is not None):
        issues.append(issue("sessionId", "sessionId cannot be combined with traceId, observationId "
                                         "or experimentId"))
    if flt.experiment_ids is not None and (flt.trace_ids is not None or flt.observation_ids is not None):
        issues.append(issue("experimentId", "experimentId cannot be combined with traceId or observationId"))
    entity_filters = (flt.ids, flt.trace_ids, flt.session_ids, flt.observation_ids, flt.experiment_ids)
    if require_from_timestamp and flt.from_ms is None and all(x is None for x in entity_filters):
        issues.append(issue("fromTimestamp", "fromTimestamp is required unless id, traceId, sessionId, "
                                             "observationId or experimentId is given"))
    if issues:
        raise zod_error(issues)
    cursor_text = query.get("cursor")
    after = decode_score_cursor(cursor_text) if cursor_text is not None else None
    return V3ScoreQuery(limit, groups, flt, after, cursor_text)


@dataclass
class V2ObservationQuery:
    limit: int
    groups: set[str]
    expand_metadata: set[str] | None
    filter: ObservationFilter
    after: tuple[int, str, str] | None
    cursor_text: str | None


def parse_v2_observation_query(query: Query) -> V2ObservationQuery:
    """Validate GET /api/public/v2/observations (unknown parameters are ignored)."""
    issues: list[dict[str, Any]] = []
    limit = parse_int_param(query, "limit", 50, 0, 1000, issues)
    fields_text = query.get("fields")
    if fields_text:
        groups = {g.strip() for g in fields_text.split(",") if g.strip() in V2_OBSERVATION_GROUPS}
    else:
        groups = {"core", "basic"}
    groups.add("core")
    expand = csv_values(query.get("expandMetadata"))
    parse_io = query.get("parseIoAsJson")
    if parse_io is not None:
        if parse_io == "true":
            issues.append(issue("parseIoAsJson", "parseIoAsJson=true is no longer supported on the v2 "
                                "observations endpoint. Input/output fields are always returned as raw strings. "
                                "Remove the parseIoAsJson parameter or set it to false."))
        elif parse_io != "false":
            issues.append(issue("parseIoAsJson", "Invalid input", "invalid_union"))
    obs_type = query.get("type")
    if obs_type is not None and obs_type not in OBSERVATION_TYPES:
        expected = " | ".join(f"'{t}'" for t in OBSERVATION_TYPES)
        issues.append(issue("type", f"Invalid enum value. Expected {expected}, received '{obs_type}'",
                            "invalid_enum_value"))
    level = query.get("level")
    if level is not None and level not in OBSERVATION_LEVELS:
        issues.append(issue("level", f"Invalid enum value, received '{level}'", "invalid_enum_value"))
    is_root_text = query.get("isRootObservation")
    is_root = None
    if is_root_text is not None:
        if is_root_text not in ("true", "false"):
            issues.append(issue("isRootObservation", "Expected boolean", "invalid_type"))
        is_root = is_root_text == "true"
    filter_text = query.get("filter")
    if filter_text:
        try:
            if not isinstance(json.loads(filter_text), list):
                raise ValueError
        except ValueError:
            raise invalid_request("Invalid JSON in filter parameter") from None
    environments = query.get_all("environment")
    flt = ObservationFilter(
        trace_id=query.get("traceId"), type=obs_type, name=query.get("name"), level=level,
        parent_id=query.get("parentObservationId"),
        environments=set(environments) if environments else None,
        from_ms=parse_date_param(query, "fromStartTime", issues),
        to_ms=parse_date_param(query, "toStartTime", issues),
        user_id=query.get("userId"), session_id=query.get("sessionId"),
        version=query.get("version"), is_root=is_root)
    if issues:
        raise zod_error(issues)
    cursor_text = query.get("cursor")
    after = decode_observation_cursor(cursor_text) if cursor_text is not None else None
    return V2ObservationQuery(limit, groups, set(expand) if expand else None, flt, after, cursor_text)


@dataclass
class LegacyScoreQuery:
    page: int
    limit: int
    include_trace: bool
    filter: ScoreFilter


def parse_legacy_score_query(query: Query) -> LegacyScoreQuery:
    """GET /api/public/scores and /api/public/v2/scores (page from 1, limit <= 100)."""
    issues: list[dict[str, Any]] = []
    page = parse_int_param(query, "page", 1, 1, None, issues)
    limit = parse_int_param(query, "limit", 50, 1, 100, issues)
    groups = csv_values(query.get("fields")) or ["score", "trace"]
    for group in groups:
        if group not in ("score", "trace"):
            issues.append(issue("fields", f"Invalid field group: {group}. Allowed: score, trace"))
    include_trace = "trace" in groups
    source = query.get("source")
    if source is not None and source not in SCORE_SOURCES:
        issues.append(issue("source", f"Invalid enum value, received '{source}'", "invalid_enum_value"))
    data_type = query.get("dataType")
    if data_type is not None and data_type not in SCORE_DATA_TYPES:
        issues.append(issue("dataType", f"Invalid enum value, received '{data_type}'", "invalid_enum_value"))
    operator, value_text = query.get("operator"), query.get("value")
    numeric_op = None
    if operator is not None or value_text is not None:
        number = coerce_number(value_text or "")
        if operator not in ("<", ">", "<=", ">=", "!=", "=") or number is None or value_text is None:
            issues.append(issue("operator", "operator and value must be given together"))
        else:
            numeric_op = (operator, number)
    user_id = query.get("userId")
    tags = query.get_all("traceTags")
    if (user_id is not None or tags) and not include_trace:
        issues.append(issue("fields", "Filtering by userId or traceTags requires the 'trace' field group"))
    environments = query.get_all("environment")
    score_ids = csv_values(query.get("scoreIds"))
    observation_ids = csv_values(query.get("observationId"))

    def single(name: str) -> set[str] | None:
        value = query.get(name)
        return {value} if value is not None else None

    flt = ScoreFilter(
        ids=set(score_ids) if score_ids is not None else None, names=single("name"),
        sources={source} if source else None, data_types={data_type} if data_type else None,
        environments=set(environments) if environments else None, config_ids=single("configId"),
        queue_ids=single("queueId"), trace_ids=single("traceId"), session_ids=single("sessionId"),
        observation_ids=set(observation_ids) if observation_ids is not None else None,
        experiment_ids=single("datasetRunId"),
        from_ms=parse_date_param(query, "fromTimestamp", issues),
        to_ms=parse_date_param(query, "toTimestamp", issues),
        numeric_op=numeric_op, user_id=user_id, trace_tags=tags or None)
    if issues:
        raise zod_error(issues)
    return LegacyScoreQuery(page, limit, include_trace, flt)


@dataclass
class LegacyObservationQuery:
    page: int
    limit: int
    filter: ObservationFilter


def parse_legacy_observation_query(query: Query) -> LegacyObservationQuery:
    """GET /api/public/observations (page from 1, limit <= 100)."""
    issues: list[dict[str, Any]] = []
    page = parse_int_param(query, "page", 1, 1, None, issues)
    limit = parse_int_param(query, "limit", 50, 1, 100, issues)
    obs_type = query.get("type")
    if obs_type is not None and obs_type not in OBSERVATION_TYPES:
        issues.append(issue("type", f"Invalid enum value, received '{obs_type}'", "invalid_enum_value"))
    level = query.get("level")
    if level is not None and level not in OBSERVATION_LEVELS:
        issues.append(issue("level", f"Invalid enum value, received '{level}'", "invalid_enum_value"))
    environments = query.get_all("environment")
    flt = ObservationFilter(
        trace_id=query.get("traceId"), type=obs_type, name=query.get("name"), level=level,
        parent_id=query.get("parentObservationId"),
        environments=set(environments) if environments else None,
        from_ms=parse_date_param(query, "fromStartTime", issues),
        to_ms=parse_date_param(query, "toStartTime", issues),
        user_id=query.get("userId"), version=query.get("version"))
    if issues:
        raise zod_error(issues)
    return LegacyObservationQuery(page, limit, flt)


# --------------------------------------------------------------------------
# Serialisation of records
# --------------------------------------------------------------------------

def score_subject(score: Score) -> dict[str, Any]:
    kind = score.subject_kind
    if kind == "experiment":
        return {"kind": "experiment", "id": score.dataset_run_id}
    if kind == "observation":
        subject = {"kind": "observation", "id": score.observation_id}
        if score.trace_id:
            subject["traceId"] = score.trace_id
        return subject
    if kind == "session":
        return {"kind": "session", "id": score.session_id}
    return {"kind": "trace", "id": score.trace_id}


def score_v3(score: Score, groups: Iterable[str], project_id: str, nested: bool = False) -> dict[str, Any]:
    """ScoreV3 (openapi.yml: BaseScoreV3 + NumericScoreV3 ... CorrectionScoreV3)."""
    item: dict[str, Any] = {
        "id": score.id, "projectId": project_id, "name": score.name, "dataType": score.data_type,
        "value": js_number(score.value), "source": score.source, "timestamp": iso(score.timestamp_ms),
        "environment": score.environment, "createdAt": iso(score.created_ms),
        "updatedAt": iso(score.updated_ms)}
    groups = set(groups)
    details = {"comment": score.comment, "configId": score.config_id, "metadata": score.metadata}
    annotation = {"authorUserId": score.author_user_id, "queueId": score.queue_id}
    if "details" in groups:
        if nested:
            item["details"] = details
        else:
            item.update(details)
    if "annotation" in groups:
        if nested:
            item["annotation"] = annotation
        else:
            item.update(annotation)
    if "subject" in groups:
        item["subject"] = score_subject(score)
    return item


def score_legacy(score: Score, project_id: str, trace: Trace | None = None,
                 include_trace: bool = False) -> dict[str, Any]:
    """GetScoresResponseData / ScoreV1 (value 1/0 + "True"/"False", TEXT without value)."""
    item: dict[str, Any] = {
        "id": score.id, "projectId": project_id, "traceId": score.trace_id,
        "sessionId": score.session_id, "observationId": score.observation_id,
        "datasetRunId": score.dataset_run_id, "name": score.name, "source": score.source,
        "timestamp": iso(score.timestamp_ms), "createdAt": iso(score.created_ms),
        "updatedAt": iso(score.updated_ms), "authorUserId": score.author_user_id,
        "comment": score.comment, "metadata": score.metadata, "configId": score.config_id,
        "queueId": score.queue_id, "environment": score.environment, "dataType": score.data_type}
    if score.data_type != "TEXT":
        item["value"] = js_number(score.numeric_value)
    if score.data_type != "NUMERIC":
        item["stringValue"] = score.legacy_string_value
    if include_trace:
        item["trace"] = ({"userId": trace.user_id, "tags": trace.tags, "environment": trace.environment,
                          "sessionId": trace.session_id} if trace else None)
    return item


def truncate_metadata(metadata: dict[str, Any], expand: set[str] | None) -> dict[str, str]:
    """v2 metadata: string values, cut to 200 characters unless named in expandMetadata."""
    result = {}
    for key, value in metadata.items():
        text = value if isinstance(value, str) else compact_json(value)
        if len(text) > 200 and not (expand and key in expand):
            text = text[:200]
        result[key] = text
    return result


def observation_v2(obs: Observation, groups: set[str], expand: set[str] | None,
                   project_id: str) -> dict[str, Any]:
    """ObservationV2 with the requested field groups (openapi.yml: ObservationV2)."""
    item: dict[str, Any] = {
        "id": obs.id, "traceId": obs.trace_id, "startTime": iso(obs.start_ms),
        "endTime": iso(obs.end_ms), "projectId": project_id,
        "parentObservationId": obs.parent_id, "type": obs.type,
        "modelId": None, "inputPrice": None, "outputPrice": None, "totalPrice": None}
    if "basic" in groups:
        item.update({
            "name": obs.name, "level": obs.level, "statusMessage": obs.status_message,
            "version": obs.version, "environment": obs.environment, "bookmarked": False,
            "public": False, "userId": obs.user_id, "sessionId": obs.session_id,
            "isRootObservation": obs.parent_id is None})
    if "time" in groups:
        item.update({"completionStartTime": iso(obs.completion_start_ms),
                     "createdAt": iso(obs.created_ms), "updatedAt": iso(updated_ms(obs))})
    if "io" in groups:
        item["input"] = raw_io(obs.input)
        item["output"] = raw_io(obs.output)
    if "metadata" in groups:
        item["metadata"] = truncate_metadata(obs.metadata, expand)
    if "model" in groups:
        item.update({"providedModelName": obs.model, "internalModelId": None,
                     "modelParameters": obs.model_parameters})
        if obs.model in MODELS:
            input_price, output_price = MODELS[obs.model]
            item.update({"internalModelId": "model-" + obs.model, "modelId": "model-" + obs.model,
                         "inputPrice": js_decimal_string(input_price),
                         "outputPrice": js_decimal_string(output_price)})
    if "usage" in groups:
        item.update({"usageDetails": dict(obs.usage), "costDetails": dict(obs.cost),
                     "totalCost": obs.cost.get("total"), "usagePricingTierName": None})
    if "prompt" in groups:
        item.update({"promptId": ("prompt-" + obs.prompt_name) if obs.prompt_name else None,
                     "promptName": obs.prompt_name, "promptVersion": obs.prompt_version})
    if "metrics" in groups:
        latency = (obs.end_ms - obs.start_ms) / 1000 if obs.end_ms is not None else None
        ttft = ((obs.completion_start_ms - obs.start_ms) / 1000
                if obs.completion_start_ms is not None else None)
        item.update({"latency": latency, "timeToFirstToken": ttft})
    if "trace_context" in groups:
        item.update({"tags": list(obs.tags), "release": obs.release, "traceName": obs.trace_name})
    return item


def updated_ms(obs: Observation) -> int:
    """updatedAt of a stored version (set by /__fake/observations/resave), else createdAt."""
    return getattr(obs, "updated_ms", None) or obs.created_ms


def observation_legacy(obs: Observation, project_id: str) -> dict[str, Any]:
    """ObservationsView (legacy v1 list and trace detail): input/output parsed."""
    prices = MODELS.get(obs.model or "")
    usage_in, usage_out = obs.usage.get("input", 0), obs.usage.get("output", 0)
    usage_total = obs.usage.get("total", 0)
    latency = (obs.end_ms - obs.start_ms) / 1000 if obs.end_ms is not None else None
    return {
        "id": obs.id, "projectId": project_id, "traceId": obs.trace_id, "type": obs.type,
        "name": obs.name, "startTime": iso(obs.start_ms), "endTime": iso(obs.end_ms),
        "completionStartTime": iso(obs.completion_start_ms), "model": obs.model,
        "modelParameters": obs.model_parameters, "input": resolve(obs.input),
        "version": obs.version, "metadata": obs.metadata, "output": resolve(obs.output),
        "usage": {"input": usage_in, "output": usage_out, "total": usage_total, "unit": "TOKENS"},
        "level": obs.level, "statusMessage": obs.status_message,
        "parentObservationId": obs.parent_id,
        "promptId": ("prompt-" + obs.prompt_name) if obs.prompt_name else None,
        "promptName": obs.prompt_name, "promptVersion": obs.prompt_version,
        "usageDetails": dict(obs.usage), "costDetails": dict(obs.cost),
        "environment": obs.environment,
        "modelId": ("model-" + obs.model) if prices else None,
        "inputPrice": prices[0] if prices else None, "outputPrice": prices[1] if prices else None,
        "totalPrice": None,
        "calculatedInputCost": obs.cost.get("input"), "calculatedOutputCost": obs.cost.get("output"),
        "calculatedTotalCost": obs.cost.get("total"), "latency": latency,
        "timeToFirstToken": ((obs.completion_start_ms - obs.start_ms) / 1000
                             if obs.completion_start_ms is not None else None),
        "createdAt": iso(obs.created_ms), "updatedAt": iso(updated_ms(obs)),
        "unit": "TOKENS", "promptTokens": usage_in, "completionTokens": usage_out,
        "totalTokens": usage_total, "usagePricingTierName": None, "usagePricingTierId": None}


# --------------------------------------------------------------------------
# Runtime options, statistics, rate limiting, outages
# --------------------------------------------------------------------------

class RuntimeOptions:
    """Behaviour switches that the control API can change while serving."""

    FIELDS = {"duplicate_across_pages": bool, "v3_require_from_timestamp": bool,
              "v3_layout": str, "rate_limit_per_minute": (int, type(None)),
              "rate_limit_window_s": (int, float), "rate_limit_langfuse_quirk": bool,
              # Edges of the real server (issue 11), see README "Server edges".
              "max_request_line": int, "max_header_bytes": int, "v2_observations": str,
              "observation_query_timeout": bool, "outage_spares_health": bool,
              "legacy_lists_all_kinds": bool, "health_version": (str, type(None))}

    def __init__(self, **values: Any):
        self._lock = threading.Lock()
        self.duplicate_across_pages = False
        self.v3_require_from_timestamp = False
        self.v3_layout = "flat"
        self.rate_limit_per_minute: int | None = None
        self.rate_limit_window_s: float = 60.0
        self.rate_limit_langfuse_quirk = False
        self.max_request_line = 8192      # nginx: a longer request line gets 414 (0: no limit)
        self.max_header_bytes = 16384     # Node: more header bytes get 431 (0: no limit)
        self.v2_observations = "ok"       # "404": v4 without the preview; "501": 3.133..3.158
        self.observation_query_timeout = False  # 422 "Request timed out" without fromStartTime
        self.outage_spares_health = False  # health answers 200 during a 503 outage
        self.legacy_lists_all_kinds = True  # False: legacy /scores hides session/experiment/CORRECTION
        self.health_version: str | None = None  # the version /health reports (None: by generation)
        self.update(values)

    def update(self, values: dict[str, Any]) -> None:
        with self._lock:
            for name, value in values.items():
                expected = self.FIELDS.get(name)
                if expected is None:
                    raise ValueError(f"unknown option {name!r}; known: {', '.join(self.FIELDS)}")
                if not isinstance(value, expected) or (expected is bool) != isinstance(value, bool):
                    raise ValueError(f"option {name!r} has the wrong type")
                if name == "v3_layout" and value not in ("flat", "nested"):
                    raise ValueError("v3_layout must be 'flat' or 'nested'")
                if name == "v2_observations" and value not in ("ok", "404", "501"):
                    raise ValueError("v2_observations must be 'ok', '404' or '501'")
                if name == "rate_limit_window_s" and value <= 0:
                    raise ValueError("rate_limit_window_s must be > 0")
                setattr(self, name, value)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {name: getattr(self, name) for name in self.FIELDS}


class RequestStats:
    """Thread-safe counters over API requests (everything outside /__fake/)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation = 0
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._generation += 1
            self._total = 0
            self._by_endpoint: dict[str, dict[str, int]] = {}
            self._in_flight = 0
            self._peak_in_flight = 0
            self._second: deque[float] = deque()
            self._minute: deque[float] = deque()
            self._max_per_second = 0
            self._max_per_minute = 0
            self._trace_detail_calls = 0
            self._responses_429 = 0
            self._bytes_sent = 0
            self._requests: list[dict[str, Any]] = []

    def begin(self, path: str, query: str, endpoint: str) -> dict[str, Any]:
        now = time.monotonic()
        record = {"t": now, "path": path, "query": query, "status": None, "endpoint": endpoint}
        with self._lock:
            record["_generation"] = self._generation
            self._total += 1
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
            for window, span in ((self._second, 1.0), (self._minute, 60.0)):
                window.append(now)
                while now - window[0] >= span:
                    window.popleft()
            self._max_per_second = max(self._max_per_second, len(self._second))
            self._max_per_minute = max(self._max_per_minute, len(self._minute))
            if endpoint == EP_TRACE:
                self._trace_detail_calls += 1
            self._requests.append(record)
        return record

    def end(self, record: dict[str, Any], status: int, bytes_sent: int, fault: str | None) -> None:
        with self._lock:
            record.update(status=status, t_end=time.monotonic(), fault=fault, bytes=bytes_sent)
            if record["_generation"] != self._generation:
                return  # begun before a reset: only the record itself is updated
            self._in_flight -= 1
            self._bytes_sent += bytes_sent
            counts = self._by_endpoint.setdefault(record["endpoint"], {})
            counts[str(status)] = counts.get(str(status), 0) + 1
            if status == 429:
                self._responses_429 += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "now": time.monotonic(),
                "requests_total": self._total,
                "by_endpoint": {k: dict(v) for k, v in self._by_endpoint.items()},
                "in_flight": self._in_flight,
                "peak_in_flight": self._peak_in_flight,
                "max_per_second": self._max_per_second,
                "max_per_minute": self._max_per_minute,
                "trace_detail_calls": self._trace_detail_calls,
                "responses_429": self._responses_429,
                "bytes_sent": self._bytes_sent,
                "requests": [{k: v for k, v in r.items() if not k.startswith("_")}
                             for r in self._requests],
            }


class FixedWindowRateLimiter:
    """Langfuse Cloud's limiter: N points per window that starts at its first request.

    Every request consumes a point, rejected ones included. With ``quirk`` the
    request that takes the last point is already rejected, as Langfuse's
    ``remainingPoints < 1`` check does (so only N-1 succeed per window).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._window_end = 0.0
        self._used = 0

    def reset(self) -> None:
        """Forget the current window; the next request opens a new one."""
        with self._lock:
            self._window_end = 0.0
            self._used = 0

    def consume(self, limit: int, window_s: float, quirk: bool) -> tuple[bool, int, float]:
        """Returns (allowed, remaining points, seconds until the window ends)."""
        now = time.monotonic()
        with self._lock:
            if now >= self._window_end:
                self._window_end = now + window_s
                self._used = 0
            self._used += 1
            remaining = max(limit - self._used, 0)
            allowed = remaining >= 1 if quirk else self._used <= limit
            return allowed, remaining, self._window_end - now


class OutageState:
    """A timed outage: every API request gets 503, or the port refuses connections."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until = 0.0
        self._mode: str | None = None

    def start(self, seconds: float, mode: str) -> None:
        if mode not in ("503", "refuse"):
            raise ValueError("mode must be '503' or 'refuse'")
        with self._lock:
            self._until = time.monotonic() + seconds
            self._mode = mode

    def current(self) -> str | None:
        with self._lock:
            if self._mode and time.monotonic() < self._until:
                return self._mode
            return None

    def describe(self) -> dict[str, Any]:
        with self._lock:
            left = max(self._until - time.monotonic(), 0.0)
            return {"mode": self._mode if left > 0 else None, "seconds_left": left}


# --------------------------------------------------------------------------
# Fault injection
# --------------------------------------------------------------------------

FAULT_MODES = ("status", "latency", "reset", "truncate", "malformed", "trickle", "stall",
               "huge", "garbage")
GARBAGE_KINDS = ("wrong_types", "missing_fields", "invalid_utf8", "deep_nesting", "huge_number",
                 "repeat_cursor", "empty_with_cursor", "duplicate_cursor")
CURSOR_GARBAGE = ("repeat_cursor", "empty_with_cursor", "duplicate_cursor")


class FaultRule:
    """One rule of the fault list; see ``FaultEngine``."""

    def __init__(self, spec: dict[str, Any]):
        if not isinstance(spec, dict):
            raise ValueError("a rule must be an object")
        self.spec = dict(spec)
        self.path = re.compile(spec.get("path", ".*"))
        self.query = re.compile(spec["query"]) if spec.get("query") is not None else None
        self.probability = float(spec.get("probability", 1.0))
        self.count = int(spec["count"]) if spec.get("count") is not None else None
        self.skip = int(spec.get("skip", 0))
        self.mode = spec.get("mode")
        if self.mode not in FAULT_MODES:
            raise ValueError(f"unknown mode {self.mode!r}; known: {', '.join(FAULT_MODES)}")
        if self.mode == "status" and not isinstance(spec.get("status"), int):
            raise ValueError("mode 'status' needs an integer 'status'")
        if self.mode == "garbage" and spec.get("kind") not in GARBAGE_KINDS:
            raise ValueError(f"mode 'garbage' needs 'kind' in {', '.join(GARBAGE_KINDS)}")
        if self.mode == "huge" and not isinstance(spec.get("bytes"), int):
            raise ValueError("mode 'huge' needs an integer 'bytes'")
        self.matched = 0
        self.fired = 0

    def get(self, name: str, default: Any = None) -> Any:
        return self.spec.get(name, default)

    def applies_to(self, path: str, raw_query: str) -> bool:
        if not self.path.search(path):
            return False
        return self.query is None or bool(self.query.search(raw_query))

    def describe(self) -> dict[str, Any]:
        return {**self.spec, "matched": self.matched, "fired": self.fired}


class FaultEngine:
    """An ordered list of fault rules; the first rule that fires wins.

    For each API request, rules are tried in order. A rule whose ``path``
    regex (re.search on the path) and optional ``query`` regex (on the raw
    query string) match counts the request; the first ``skip`` matching
    requests pass through (and later rules are tried), after ``count`` firings
    the rule is spent, and otherwise it fires with ``probability`` (a seeded
    RNG decides).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._rng = random.Random(1)

    def configure(self, rules: list[dict[str, Any]], seed: int = 1) -> None:
        compiled = [FaultRule(spec) for spec in rules]
        with self._lock:
            self._rules = compiled
            self._rng = random.Random(seed)

    def clear(self) -> None:
        with self._lock:
            self._rules = []

    def pick(self, path: str, raw_query: str) -> FaultRule | None:
        with self._lock:
            for rule in self._rules:
                if not rule.applies_to(path, raw_query):
                    continue
                rule.matched += 1
                if rule.matched <= rule.skip:
                    continue
                if rule.count is not None and rule.fired >= rule.count:
                    continue
                if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                    continue
                rule.fired += 1
                return rule
        return None

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.describe() for rule in self._rules]


class GarbageRenderer:
    """Serialises a response payload with record-level corruption.

    Corrupts the first record of ``data`` (all of them with ``"all": true``).
    Raw splices put bytes in the body that json.dumps cannot write (invalid
    UTF-8, 10,000 nested arrays, 1e400).
    """

    _MARK = "@@FAKE_RAW_%d@@"

    def __init__(self) -> None:
        self._splices: list[tuple[bytes, bytes]] = []

    def _raw_value(self, raw: bytes) -> str:
        """A placeholder string that becomes ``raw`` (replacing its quotes too)."""
        marker = self._MARK % len(self._splices)
        self._splices.append((b'"' + marker.encode() + b'"', raw))
        return marker

    def _raw_in_string(self, raw: bytes) -> str:
        """A placeholder inside a string that becomes ``raw``."""
        marker = self._MARK % len(self._splices)
        self._splices.append((marker.encode(), raw))
        return marker

    def render(self, payload: Any, endpoint_kind: str, rule: FaultRule) -> bytes:
        kind = rule.get("kind")
        data = payload.get("data") if isinstance(payload, dict) else None
        records = [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []
        targets = records if rule.get("all") else records[:1]
        is_score = endpoint_kind in ("v3_scores", "legacy_scores")
        if kind == "wrong_types":
            target = rule.get("target", "item")
            if target == "data" and isinstance(payload, dict):
                payload["data"] = {str(i): r for i, r in enumerate(records)}
            elif target == "meta" and isinstance(payload, dict):
                payload["meta"] = {"cursor": 12345, "page": "one", "limit": "fifty"}
            elif not records and isinstance(payload, dict):
                for key, value in list(payload.items()):
                    if isinstance(value, str):
                        payload[key] = 12345
            for record in (targets if target == "item" else []):
                record["id"] = 12345
                if is_score:
                    record["value"] = {"unexpected": "object"}
                    record["timestamp"] = 1700000000
                    if "subject" in record:
                        record["subject"] = "trace"
                else:
                    record["traceId"] = 42
                    record["startTime"] = True
                    if endpoint_kind == "v2_observations" and "input" in record:
                        record["input"] = {"expected": "a string"}
                    record["usageDetails"] = "lots"
        elif kind == "missing_fields":
            for record in targets:
                for name in ("id", "traceId", "subject", "startTime" if not is_score else "timestamp"):
                    record.pop(name, None)
        elif kind == "invalid_utf8":
            for record in targets:
                name = next((n for n in ("input", "value", "stringValue", "name", "id")
                             if isinstance(record.get(n), str)), "id")
                text = str(record.get(name, ""))
                record[name] = text[: len(text) // 2] + self._raw_in_string(b"\xff\xfe") + text[len(text) // 2:]
        elif kind == "deep_nesting":
            depth = int(rule.get("depth", 10_000))
            nested = b"[" * depth + b"]" * depth
            for record in targets:
                if endpoint_kind == "v2_observations":
                    record["input"] = nested.decode()
                    record["metadata"] = self._raw_value(nested)
                elif is_score:
                    record["metadata"] = self._raw_value(nested)
                else:
                    record["input"] = self._raw_value(nested)
        elif kind == "huge_number":
            for record in (targets if not is_score else
                           ([r for r in records if r.get("dataType") == "NUMERIC"][:1] or targets)):
                if is_score:
                    record["value"] = self._raw_value(b"1e400")
                else:
                    record["usageDetails"] = {"input": 123456789012345678901234567890,
                                              "output": self._raw_value(b"1e400"),
                                              "total": self._raw_value(b"-1e400")}
                    if "usage" in record:
                        record["usage"] = {"input": 123456789012345678901234567890,
                                           "output": self._raw_value(b"1e400"), "total": 0,
                                           "unit": "TOKENS"}
        body = compact_json(payload).encode("utf-8")
        for marker, raw in self._splices:
            body = body.replace(marker, raw)
        return body


# --------------------------------------------------------------------------
# The public API
# --------------------------------------------------------------------------

@dataclass
class ApiResponse:
    status: int
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    kind: str = "other"          # endpoint kind, for garbage rendering
    body: bytes | None = None    # pre-rendered body (non-JSON answers)
    content_type: str = "application/json; charset=utf-8"


@dataclass
class ApiRequest:
    method: str
    path: str
    query: Query
    headers: Any                 # http.client.HTTPMessage
    garbage: FaultRule | None = None

    @property
    def cursor_garbage(self) -> str | None:
        kind = self.garbage.get("kind") if self.garbage else None
        return kind if kind in CURSOR_GARBAGE else None


def endpoint_template(path: str) -> str:
    if path in (EP_HEALTH, EP_PROJECTS, EP_V3_SCORES, EP_V2_OBSERVATIONS, EP_V1_SCORES,
                EP_V2_SCORES, EP_V1_OBSERVATIONS):
        return path
    if TRACE_PATH.match(path):
        return EP_TRACE
    return EP_OTHER


class LangfuseApi:
    """The /api/public/* endpoints of one API generation over a DataStore."""

    def __init__(self, app: "FakeLangfuseApp"):
        self.app = app
        self.config = app.config
        self.store = app.store
        self.project_id = app.config.project_id
        self.current = app.config.generation == "current"

    # -- entry point -------------------------------------------------------

    def handle(self, request: ApiRequest) -> ApiResponse:
        template = endpoint_template(request.path)
        if request.method != "GET" and template != EP_OTHER:
            raise ApiError(405, "Method not allowed", "MethodNotAllowedError")
        if template == EP_HEALTH:
            version = self.app.options.health_version
            return ApiResponse(200, {"status": "OK",
                                     "version": version or SERVER_VERSIONS[self.config.generation]})
        routes: dict[str, Callable[[ApiRequest], ApiResponse]] = {EP_PROJECTS: self.projects,
                                                                    EP_TRACE: self.trace_detail}
        if self.current:
            routes.update({EP_V3_SCORES: self.v3_scores, EP_V2_OBSERVATIONS: self.v2_observations})
        else:
            routes.update({EP_V1_SCORES: self.legacy_scores, EP_V2_SCORES: self.legacy_scores,
                           EP_V1_OBSERVATIONS: self.legacy_observations})
        v2_observations = self.app.options.v2_observations
        if template == EP_V2_OBSERVATIONS and v2_observations == "501":
            raise ApiError(501, "Not implemented", "NotImplementedError")
        if self.current and v2_observations == "404":
            # A v4 server in legacy write mode without the v4 preview: v3 scores, v1 observations.
            routes.pop(EP_V2_OBSERVATIONS)
            routes[EP_V1_OBSERVATIONS] = self.legacy_observations
        handler = routes.get(template)
        if handler is None:
            raise not_found()
        self.authenticate(request.headers)
        self.rate_limit()
        return handler(request)

    def authenticate(self, headers: Any) -> None:
        header = headers.get("Authorization")
        if not header:
            raise ApiError(401, "Unauthorized: no Authorization header", "UnauthorizedError")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer":
            raise ApiError(403, "Access denied: use Basic auth with the secret key", "ForbiddenError")
        if scheme.lower() != "basic":
            raise ApiError(401, "Unauthorized: invalid authorization header", "UnauthorizedError")
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise ApiError(401, "Unauthorized: invalid authorization header", "UnauthorizedError") from None
        public_key, sep, secret_key = decoded.partition(":")
        ok_public = hmac.compare_digest(public_key.encode(), self.config.public_key.encode())
        ok_secret = hmac.compare_digest(secret_key.encode(), self.config.secret_key.encode())
        if not sep or not (ok_public and ok_secret):
            raise ApiError(401, "Invalid credentials. Confirm that you've configured the correct host.",
                           "UnauthorizedError")

    def rate_limit(self) -> None:
        options = self.app.options
        limit = options.rate_limit_per_minute
        if not limit:
            return
        allowed, remaining, seconds_left = self.app.rate_limiter.consume(
            limit, options.rate_limit_window_s, options.rate_limit_langfuse_quirk)
        if allowed:
            return
        retry_after = max(math.ceil(seconds_left), 1)
        reset_epoch = time.time() + seconds_left
        headers = {"Retry-After": str(retry_after), "X-RateLimit-Limit": str(limit),
                   "X-RateLimit-Remaining": str(remaining),
                   "X-RateLimit-Reset": js_date_string(reset_epoch)}
        body = {"message": "Rate limit exceeded", "code": "rate_limited",
                "details": {"retryAfterSeconds": retry_after, "limit": limit, "remaining": remaining,
                            "resetAt": iso(int(reset_epoch * 1000))}}
        raise ApiError(429, "Rate limit exceeded", headers=headers, body=body)

    # -- endpoints -----------------------------------------------------------

    def projects(self, request: ApiRequest) -> ApiResponse:
        return ApiResponse(200, {"data": [{
            "id": self.project_id, "name": "lfharvest demo project",
            "organization": {"id": "org-demo", "name": "Demo Organization"},
            "metadata": {}}]})

    def v3_scores(self, request: ApiRequest) -> ApiResponse:
        options = self.app.options
        query = parse_v3_score_query(request.query, options.v3_require_from_timestamp)
        now = time.monotonic()
        traces = self.store.traces
        matches = lambda s: query.filter.matches(s, traces)  # noqa: E731

        def page_after(after: tuple[int, str] | None, limit: int) -> tuple[list[Score], bool]:
            duplicate = None
            if options.duplicate_across_pages and after is not None and limit >= 2:
                candidate = self.store.score(after[1])
                if (candidate is not None and score_key(candidate) == after
                        and candidate.visible_at <= now and matches(candidate)):
                    duplicate = candidate
            wanted = limit - (1 if duplicate else 0)
            rows = take(filter(matches, self.store.scores_desc(now, after)), wanted + 1)
            page = ([duplicate] if duplicate else []) + rows[:wanted]
            return page, len(rows) > wanted

        page, has_more = page_after(query.after, query.limit)
        natural = encode_score_cursor(*score_key(page[-1])) if has_more and page else None

        def first_page_cursor() -> str:
            first, _ = page_after(None, query.limit)
            return encode_score_cursor(*score_key(first[-1])) if first else encode_score_cursor(MAX_TIME_MS, "")

        cursor, page = apply_cursor_garbage(request, natural, page, first_page_cursor,
                                            encode_score_cursor(MAX_TIME_MS, ""))
        nested = options.v3_layout == "nested"
        meta: dict[str, Any] = {"limit": query.limit}
        if cursor is not None:
            meta["cursor"] = cursor
        data = [score_v3(s, query.groups, self.project_id, nested) for s in page]
        return ApiResponse(200, {"data": data, "meta": meta}, kind="v3_scores")

    def v2_observations(self, request: ApiRequest) -> ApiResponse:
        options = self.app.options
        query_timeout_unless_bounded(options, request.query)
        query = parse_v2_observation_query(request.query)
        now = time.monotonic()
        flt = query.filter

        def page_after(after: tuple[int, str, str] | None, limit: int) -> tuple[list[Observation], bool]:
            duplicate = None
            if options.duplicate_across_pages and after is not None and limit >= 2:
                candidate = self.store.observation(after[2])
                if (candidate is not None and observation_key(candidate) == after
                        and candidate.visible_at <= now and flt.matches(candidate)):
                    duplicate = candidate
            wanted = limit - (1 if duplicate else 0)
            rows = take(filter(flt.matches, self.store.observations_desc(now, after, flt.trace_id)), wanted + 1)
            page = ([duplicate] if duplicate else []) + rows[:wanted]
            return page, len(rows) > wanted

        page, has_more = page_after(query.after, query.limit)
        natural = encode_observation_cursor(*observation_key(page[-1])) if has_more and page else None
        start_cursor = encode_observation_cursor(MAX_TIME_MS, "", "")

        def first_page_cursor() -> str:
            first, _ = page_after(None, max(query.limit, 1))
            return encode_observation_cursor(*observation_key(first[-1])) if first else start_cursor

        cursor, page = apply_cursor_garbage(request, natural, page, first_page_cursor, start_cursor)
        data = [observation_v2(o, query.groups, query.expand_metadata, self.project_id) for o in page]
        meta = {"cursor": cursor} if cursor is not None else {}
        return ApiResponse(200, {"data": data, "meta": meta}, kind="v2_observations")

    def legacy_scores(self, request: ApiRequest) -> ApiResponse:
        query = parse_legacy_score_query(request.query)
        now = time.monotonic()
        traces = self.store.traces
        all_kinds = self.app.options.legacy_lists_all_kinds
        rows = [s for s in self.store.scores_desc(now) if query.filter.matches(s, traces)
                and (all_kinds or (s.subject_kind not in ("session", "experiment")
                                   and s.data_type != "CORRECTION"))]
        page, meta = legacy_page(request, rows, query.page, query.limit)
        data = [score_legacy(s, self.project_id, traces.get(s.trace_id or ""), query.include_trace)
                for s in page]
        return ApiResponse(200, {"data": data, "meta": meta}, kind="legacy_scores")

    def legacy_observations(self, request: ApiRequest) -> ApiResponse:
        query_timeout_unless_bounded(self.app.options, request.query)
        query = parse_legacy_observation_query(request.query)
        now = time.monotonic()
        flt = query.filter
        rows = [o for o in self.store.observations_desc(now, None, flt.trace_id) if flt.matches(o)]
        page, meta = legacy_page(request, rows, query.page, query.limit)
        data = [observation_legacy(o, self.project_id) for o in page]
        return ApiResponse(200, {"data": data, "meta": meta}, kind="legacy_observations")

    def trace_detail(self, request: ApiRequest) -> ApiResponse:
        trace_id = unquote(TRACE_PATH.match(request.path).group(1))  # type: ignore[union-attr]
        trace = self.store.traces.get(trace_id)
        now = time.monotonic()
        observations = self.store.trace_observations(trace_id, now) if trace else []
        if trace is None or not observations:
            raise not_found(f"Trace {trace_id} not found within authorized project")
        scores = [s for s in self.store.scores_desc(now) if s.trace_id == trace_id]
        ends = [o.end_ms for o in observations if o.end_ms is not None]
        payload = {
            "id": trace.id, "timestamp": iso(trace.timestamp_ms), "name": trace.name,
            "input": trace.input, "output": trace.output, "sessionId": trace.session_id,
            "release": trace.release, "version": trace.version, "userId": trace.user_id,
            "metadata": trace.metadata, "tags": trace.tags, "public": False,
            "environment": trace.environment,
            "htmlPath": f"/project/{self.project_id}/traces/{trace.id}",
            "latency": (max(ends) - trace.timestamp_ms) / 1000 if ends else 0,
            "totalCost": round(sum(o.cost.get("total", 0.0) for o in observations), 10),
            "observations": [observation_legacy(o, self.project_id) for o in observations],
            "scores": [score_legacy(s, self.project_id) for s in scores]}
        return ApiResponse(200, payload, kind="trace")


def query_timeout_unless_bounded(options: "RuntimeOptions", query: Query) -> None:
    """ClickHouse's limit as Langfuse reports it, for observation queries without a start bound."""
    if options.observation_query_timeout and "fromStartTime" not in query:
        raise ApiError(422, "Request timed out", "QueryTimeoutError")


def take(rows: Iterable[Any], count: int) -> list[Any]:
    result = []
    if count <= 0:
        return result
    for row in rows:
        result.append(row)
        if len(result) >= count:
            break
    return result


def apply_cursor_garbage(request: ApiRequest, natural: str | None, page: list[Any],
                         first_page_cursor: Callable[[], str], start_cursor: str) -> tuple[str | None, list[Any]]:
    """The (cursor, page) to send, bent by a cursor garbage rule if one fired.

    repeat_cursor: always the cursor that follows the first page (endless loop);
    duplicate_cursor: the request's own cursor comes back;
    empty_with_cursor: no data, and a cursor that does not skip anything.
    """
    kind = request.cursor_garbage
    requested = request.query.get("cursor")
    if kind == "repeat_cursor":
        return first_page_cursor(), page
    if kind == "duplicate_cursor":
        return requested or natural or first_page_cursor(), page
    if kind == "empty_with_cursor":
        return requested or start_cursor, []
    return natural, page


def legacy_page(request: ApiRequest, rows: list[Any], page: int, limit: int) -> tuple[list[Any], dict[str, Any]]:
    """OFFSET paging with utilsMetaResponse, bent by cursor garbage rules."""
    total = len(rows)
    total_pages = math.ceil(total / limit)
    kind = request.cursor_garbage
    if kind in ("repeat_cursor", "duplicate_cursor"):
        return rows[:limit], {"page": page, "limit": limit, "totalItems": total + limit,
                              "totalPages": max(total_pages, page + 1)}
    if kind == "empty_with_cursor":
        return [], {"page": page, "limit": limit, "totalItems": total,
                    "totalPages": max(total_pages, page + 1)}
    start = (page - 1) * limit
    return rows[start:start + limit], {"page": page, "limit": limit, "totalItems": total,
                                       "totalPages": total_pages}


# --------------------------------------------------------------------------
# Control API
# --------------------------------------------------------------------------

class ControlError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class ControlApi:
    """Test control plane under /__fake/: no auth, never counted in the stats.

    GET    /__fake/stats            Request statistics (see RequestStats.snapshot):
                                    requests_total, by_endpoint {template: {status: n}},
                                    peak_in_flight, max_per_second, max_per_minute,
                                    trace_detail_calls, responses_429, bytes_sent, now,
                                    requests [{t, t_end, path, query, status, fault, bytes}].
    POST   /__fake/reset-stats      Zero every counter and the request list.
    GET    /__fake/faults           The rules with their matched/fired counts.
    POST   /__fake/faults           {"seed": 1, "rules": [...]} replaces the rule list.
    DELETE /__fake/faults           Removes every rule.
    POST   /__fake/outage           {"seconds": S, "mode": "503"|"refuse"}.
    GET    /__fake/options          Runtime options; POST with a subset to change them:
                                    duplicate_across_pages, v3_require_from_timestamp,
                                    v3_layout ("flat"|"nested"), rate_limit_per_minute,
                                    rate_limit_window_s, rate_limit_langfuse_quirk
                                    (setting a rate_limit_* option starts a fresh window).
    POST   /__fake/scores/edit      {"ids": [...], "value"?, "stringValue"?, "comment"?,
                                    "touch_updated_at"?}: id, timestamp, updatedAt kept.
    POST   /__fake/scores/delete    {"ids": [...]}: hard delete.
    POST   /__fake/scores/add       {"count", "name", "data_type", "source", "timestamp_offset_s",
                                    "visible_after_s", "new_traces", "trace_ids",
                                    "observations_visible_after_s"} -> new score and trace ids.
    POST   /__fake/traces/{id}/observations/add
                                    {"visible_after_s"?, "start_offset_s"?} adds a GENERATION.
    POST   /__fake/scores/resave    {"ids", "timestamp_offset_s", "value"?, "stringValue"?}: the
                                    score is saved again with its timestamp moved (another day):
                                    the old copy stays listed, as the server stores both.
    POST   /__fake/observations/resave {"ids", "output"}: a newer version (later updatedAt)
                                    with a new output; the old version is still listed after it.
    GET    /__fake/scores           Every score, with "visible" and "deleted" flags.
    GET    /__fake/truth[?full=1]   Visible ANNOTATION scores and their traces' observations.
    """

    def __init__(self, app: "FakeLangfuseApp"):
        self.app = app
        self.store = app.store
        rng = random.Random(f"control-{app.config.data.seed}")
        self.generator = DatasetGenerator(app.config.data, rng, app.ids_for(rng))
        self._lock = threading.Lock()

    def handle(self, method: str, path: str, query: Query, body: bytes) -> tuple[int, Any]:
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError:
            return 400, {"error": "request body is not JSON"}
        routes: dict[tuple[str, str], Callable[[Any, Query], Any]] = {
            ("GET", "/__fake/stats"): lambda p, q: self.app.stats.snapshot(),
            ("POST", "/__fake/reset-stats"): self.reset_stats,
            ("GET", "/__fake/faults"): lambda p, q: {"rules": self.app.faults.describe()},
            ("POST", "/__fake/faults"): self.set_faults,
            ("DELETE", "/__fake/faults"): self.clear_faults,
            ("POST", "/__fake/outage"): self.outage,
            ("GET", "/__fake/options"): lambda p, q: self.app.options.snapshot(),
            ("POST", "/__fake/options"): self.set_options,
            ("GET", "/__fake/load"): lambda p, q: self.app.load.snapshot(),
            ("POST", "/__fake/load"): lambda p, q: self.app.load.configure(p),
            ("POST", "/__fake/scores/edit"): self.edit_scores,
            ("POST", "/__fake/scores/delete"): self.delete_scores,
            ("POST", "/__fake/scores/add"): self.add_scores,
            ("GET", "/__fake/scores"): self.list_scores,
            ("POST", "/__fake/scores/resave"): self.resave_scores,
            ("POST", "/__fake/observations/resave"): self.resave_observations,
            ("GET", "/__fake/truth"): self.truth,
        }
        try:
            match = re.match(r"^/__fake/traces/([^/]+)/observations/add$", path)
            if match and method == "POST":
                return 200, self.add_observation(match.group(1), payload)
            route = routes.get((method, path))
            if route is None:
                return 404, {"error": f"no control endpoint {method} {path}"}
            if payload is not None and not isinstance(payload, dict):
                raise ControlError(400, "body must be a JSON object")
            return 200, route(payload, query)
        except ControlError as error:
            return error.status, {"error": str(error)}
        except (ValueError, TypeError, re.error) as error:
            return 400, {"error": str(error)}

    # -- stats, faults, outages, options ------------------------------------------

    def reset_stats(self, payload: dict[str, Any], query: Query) -> dict[str, Any]:
        self.app.stats.reset()
        self.app.load.reset_counters()
        return {"ok": True}

    def set_faults(self, payload: dict[str, Any], query: Query) -> dict[str, Any]:
        rules = payload.get("rules", [])
        if not isinstance(rules, list):
            raise ControlError(400, "'rules' must be a list")
        self.app.faults.configure(rules, int(payload.get("seed", 1)))
        return {"rules": self.app.faults.describe()}

    def clear_faults(self, payload: dict[str, Any], query: Query) -> dict[str, Any]:
        self.app.faults.clear()
        return {"rules": []}

    def outage(self, payload: dict[str, Any], query: Query) -> dict[str, Any]:
        seconds = float(payload.get("seconds", 0))
        self.app.outage.start(seconds, str(payload.get("mode", "503")))
        return self.app.outage.describe()

    def set_options(self, payload: dict[str, Any], query: Query) -> dict[str, Any]:
        self.app.options.update(payload)
        if any(name.startswith("rate_limit") for name in payload):
            self.app.rate_limiter.reset()  # a changed limit starts a fresh window
        return self.app.options.snapshot()

    # -- data changes ------------------------------------------------------------

    @staticmethod
    def _ids(payload: dict[str, Any]) -> list[str]:
        ids = payload.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ControlError(400, "'ids' must be a list of strings")
        return ids

    def edit_scores(self, payload: dict[str, Any], query: Query) -> dict[str, Any]:
        changes = {k: payload[k] for k in ("value", "stringValue", "comment", "touch_updated_at")
                   if k in payload}
        edited, missing = self.store.edit_scores(self._ids(payload), changes)
        return {"edited": edited, "missing": missing}

    def delete_scores(self, payload: dict[str, Any], query: Query) -> dict[str, Any]:
        deleted, missing = self.store.delete_scores(self._ids(payload))
        return {"deleted": deleted, "missing": missing}

    def add_scores(self, payload: dict[str, Any], query: Query) -> dict[str, Any]:
        count = int(payload.get("count", 1))
        name = str(payload.get("name", "quality"))
        data_type = str(payload.get("data_type", "CATEGORICAL"))
        source = str(payload.get("source", "ANNOTATION"))
        if data_type not in SCORE_DATA_TYPES or source not in SCORE_SOURCES:
            raise ControlError(400, "bad data_type or source")
        offset_ms = int(float(payload.get("timestamp_offset_s", -600)) * 1000)
        visible_at = time.monotonic() + float(payload.get("visible_after_s", 0))
        obs_visible_at = time.monotonic() + float(payload.get("observations_visible_after_s", 0))
        new_traces = bool(payload.get("new_traces", True))
        trace_ids = payload.get("trace_ids")
        with self._lock:
            generator = self.generator
            if new_traces:
                targets = []
                for _ in range(count):
                    timestamp = wall_ms() + offset_ms - generator.rng.randint(60_000, 300_000)
                    trace = generator.build_trace(timestamp, visible_at=obs_visible_at)
                    self.store.add_trace(trace)
                    targets.append(trace)
            elif trace_ids:
                targets = [self.store.traces[t] for t in trace_ids if t in self.store.traces]
                if len(targets) != len(trace_ids):
                    raise ControlError(404, "unknown trace id in 'trace_ids'")
                targets = (targets * count)[:count] if count > len(targets) else targets[:count]
            else:
                known = sorted(self.store.traces)
                targets = [self.store.traces[generator.rng.choice(known)] for _ in range(count)]
            scores = []
            for trace in targets:
                timestamp = wall_ms() + offset_ms
                score = generator.make_score(name, data_type, source, timestamp, trace.environment, trace,
                                             value=payload.get("value"), visible_at=visible_at)
                scores.append(score)
            id_length = int(payload.get("id_length", 0))
            for score in scores:  # API-created scores may carry any id, long ones too
                if id_length > len(score.id):
                    score.id = (score.id + "-" + "x" * id_length)[:id_length]
            self.store.add_scores(scores)
        return {"score_ids": [s.id for s in scores], "trace_ids": [t.id for t in targets]}

    def resave_scores(self, payload: dict[str, Any], query: Query) -> dict[str, Any]:
        import copy
        offset_ms = int(float(payload.get("timestamp_offset_s", 86_400)) * 1000)
        resaved = []
        for score_id in self._ids(payload):
            with self._lock:
                current = self.store.score(score_id)
                if current is None:
                    raise ControlError(404, f"unknown score {score_id}")
                old = copy.copy(current)
                self.store.delete_scores([score_id])
                self.store._deleted.pop(score_id, None)
                current.timestamp_ms += offset_ms
                current.updated_ms = max(current.updated_ms, wall_ms())
                if "value" in payload or "stringValue" in payload:
                    set_score_value(current, payload.get("value"), payload.get("stringValue"))
                self.store.add_scores([current])
                self.store.store_old_score_copy(old)
                resaved.append(score_id)
        return {"resaved": resaved}

    def resave_observations(self, payload: dict[str, Any], query: Query) -> dict[str, Any]:
        import copy
        resaved = []
        for obs_id in self._ids(payload):
            with self._lock:
                current = self.store.observation(obs_id)
                if current is None:
                    raise ControlError(404, f"unknown observation {obs_id}")
                old = copy.copy(current)
                current.output = payload.get("output", {"role": "assistant", "content": "resaved"})
                current.updated_ms = max(updated_ms(old) + 1000, wall_ms())
                self.store.store_old_observation_copy(old)
                resaved.append(obs_id)
        return {"resaved": resaved}

    def add_observation(self, trace_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        trace = self.store.traces.get(trace_id)
        if trace is None:
            raise ControlError(404, f"unknown trace {trace_id}")
        visible_at = time.monotonic() + float(payload.get("visible_after_s", 0))
        with self._lock:
            if "start_offset_s" in payload:
                start = trace.timestamp_ms + int(float(payload["start_offset_s"]) * 1000)
            else:
                start = max(o.end_ms or o.start_ms for o in trace.observations) + 1000
            root = next((o for o in trace.observations if o.parent_id is None), None)
            obs = self.generator.build_generation(trace, root.id if root else None, start,
                                                  visible_at=visible_at)
            self.store.add_observation(obs)
        return {"id": obs.id, "traceId": trace_id, "startTime": iso(obs.start_ms)}

    # -- views of the data ---------------------------------------------------------

    def list_scores(self, payload: dict[str, Any], query: Query) -> dict[str, Any]:
        now = time.monotonic()
        live, deleted = self.store.all_scores()
        rows = []
        for score, is_deleted in [(s, False) for s in live] + [(s, True) for s in deleted]:
            item = score_legacy(score, self.app.config.project_id)
            item["v3Value"] = js_number(score.value)
            item["visible"] = score.visible_at <= now and not is_deleted
            item["deleted"] = is_deleted
            rows.append(item)
        return {"scores": rows}

    def truth(self, payload: dict[str, Any], query: Query) -> dict[str, Any]:
        """What a correct harvest of ANNOTATION scores holds right now.

        Big inputs are given as null plus inputBytes/inputSha256 (of the v2 raw
        string) unless ?full=1.
        """
        full = query.get("full") in ("1", "true")
        now = time.monotonic()
        scores = [s for s in self.store.scores_desc(now) if s.source == "ANNOTATION"
                  and self.store.score(s.id) is s]  # an older stored copy is not the truth
        truth_scores = [{
            "id": s.id, "name": s.name, "dataType": s.data_type, "value": js_number(s.value),
            "numericValue": js_number(s.numeric_value), "stringValue": s.legacy_string_value,
            "comment": s.comment, "traceId": s.trace_id, "observationId": s.observation_id,
            "sessionId": s.session_id, "datasetRunId": s.dataset_run_id,
            "subjectKind": s.subject_kind, "authorUserId": s.author_user_id,
            "timestamp": iso(s.timestamp_ms)} for s in scores]
        traces = {}
        for trace_id in sorted({s.trace_id for s in scores if s.trace_id}):
            observations = []
            for obs in self.store.trace_observations(trace_id, now):
                entry = {"id": obs.id, "type": obs.type, "name": obs.name,
                         "startTime": iso(obs.start_ms), "parentObservationId": obs.parent_id,
                         "model": obs.model, "big": obs.is_big}
                if obs.is_big and not full:
                    raw = raw_io(obs.input).encode("utf-8")  # type: ignore[union-attr]
                    entry.update(input=None, inputBytes=len(raw), inputSha256=hashlib.sha256(raw).hexdigest())
                else:
                    entry["input"] = resolve(obs.input)
                entry["output"] = resolve(obs.output)
                observations.append(entry)
            traces[trace_id] = {"id": trace_id, "observations": observations}
        return {"scores": truth_scores, "traces": traces}


# --------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------

class ServerConfig:
    def __init__(self, args: argparse.Namespace):
        self.port: int = args.port
        self.generation: str = args.generation
        self.public_key: str = args.public_key
        self.secret_key: str = args.secret_key
        self.project_id: str = args.project_id
        self.tls_cert: str | None = args.tls_cert
        self.tls_key: str | None = args.tls_key
        self.log_requests: str | None = args.log_requests
        self.load_options = server_load.options_from_args(args)
        start_ms = parse_iso_ms(args.start_time) if args.start_time else wall_ms()
        self.data = DataConfig(traces=40 if args.demo else args.traces,
                               annotated_fraction=args.annotated_fraction,
                               big_fraction=args.big_fraction, big_size=args.big_size,
                               seed=args.seed, start_time_ms=start_ms, days=args.days,
                               demo=args.demo)
        self.options = {
            "duplicate_across_pages": args.duplicate_across_pages,
            "v3_require_from_timestamp": args.v3_require_from_timestamp,
            "v3_layout": args.v3_layout,
            "rate_limit_per_minute": args.rate_limit_per_minute,
            "rate_limit_window_s": args.rate_limit_window_s,
            "rate_limit_langfuse_quirk": args.rate_limit_langfuse_quirk,
        }


class RequestLog:
    """One line per API request, appended to a file (never the credentials)."""

    def __init__(self, path: str):
        self._file = open(path, "a", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()

    def write(self, method: str, path: str, query: str, status: int, nbytes: int,
              seconds: float, fault: str | None) -> None:
        target = path + ("?" + query if query else "")
        line = f"{iso(wall_ms())} {method} {target} {status} {nbytes}B {seconds * 1000:.1f}ms"
        if fault:
            line += f" fault={fault}"
        with self._lock:
            self._file.write(line + "\n")

    def close(self) -> None:
        with self._lock:
            self._file.close()


class FakeLangfuseApp:
    """Everything the HTTP handlers need: data, API, faults, stats, control."""

    def __init__(self, config: ServerConfig):
        self.config = config
        self.stop_event = threading.Event()
        self._used_ids: set[str] = set()
        self.store = DataStore()
        rng = random.Random(config.data.seed)
        traces, scores = DatasetGenerator(config.data, rng, self.ids_for(rng)).generate()
        self.store.load(traces, scores)
        self.options = RuntimeOptions(**config.options)
        self.stats = RequestStats()
        self.faults = FaultEngine()
        self.outage = OutageState()
        self.rate_limiter = FixedWindowRateLimiter()
        self.load = server_load.ServerLoad(**config.load_options)
        self.api = LangfuseApi(self)
        self.control = ControlApi(self)
        self.request_log = RequestLog(config.log_requests) if config.log_requests else None

    def ids_for(self, rng: random.Random) -> IdFactory:
        """An id factory that shares the set of used ids with every other one."""
        return IdFactory(rng, self._used_ids)


class FakeLangfuseHandler(BaseHTTPRequestHandler):
    """Routes /__fake/* to the ControlApi and everything else to the API."""

    protocol_version = "HTTP/1.1"
    # TCP_NODELAY, as Node's HTTP server sets by default: without it the body, written after the
    # headers, waits for the client's delayed ACK (about 40 ms a response on Linux).
    disable_nagle_algorithm = True
    server_version = "FakeLangfuse/1.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this
    server: "FakeLangfuseServer"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # requests are logged by RequestLog, without headers

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    # -- dispatch ----------------------------------------------------------

    def _dispatch(self) -> None:
        app = self.server.app
        url = urlsplit(self.path)
        body = self._read_body()
        if url.path.startswith("/__fake/"):
            status, payload = app.control.handle(self.command, url.path, Query(url.query), body)
            self._send(status, compact_json(payload).encode("utf-8"))  # not counted in stats
            return
        self._serve_api(app, url.path, url.query)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve_api(self, app: FakeLangfuseApp, path: str, raw_query: str) -> None:
        record = app.stats.begin(path, raw_query, endpoint_template(path))
        started = time.monotonic()
        self._status_sent, self._bytes_sent = 0, 0
        fault = None
        app.load.enter(self)
        try:
            fault = self._api_exchange(app, path, raw_query)
        except (ConnectionError, socket.timeout, ssl.SSLError, OSError):
            self.close_connection = True  # the client hung up mid-answer
        finally:
            app.load.leave(self)
            app.stats.end(record, self._status_sent, self._bytes_sent, fault)
            if app.request_log:
                app.request_log.write(self.command, path, raw_query, self._status_sent,
                                      self._bytes_sent, time.monotonic() - started, fault)

    def _api_exchange(self, app: FakeLangfuseApp, path: str, raw_query: str) -> str | None:
        """Answers one API request (outage, then faults, then the API); returns the fault."""
        options = app.options
        if options.max_request_line and len(self.requestline.encode("latin-1", "replace")) > options.max_request_line:
            self._send(414, b"<html><body><h1>414 Request-URI Too Large</h1></body></html>", {},
                       "text/html")
            return "url-limit"
        header_bytes = sum(len(k) + len(v) + 4 for k, v in self.headers.items())
        if options.max_header_bytes and len(self.requestline) + header_bytes > options.max_header_bytes:
            self._send(431, b"", {}, "text/plain")
            return "header-limit"
        outage = app.outage.current()
        if outage == "503" and options.outage_spares_health and endpoint_template(path) == EP_HEALTH:
            outage = None  # /health checks nothing: it answers while the API fails
        if outage == "refuse":
            self._reset_connection()
            return "outage-refuse"
        if outage == "503":
            body = compact_json({"message": "Service Unavailable", "error": "ServiceUnavailable"})
            self._send(503, body.encode())
            return "outage-503"
        down = app.load.crashed_status()
        if down is not None:  # the Node process behind nginx is restarting after a crash
            self._send(down, server_load.nginx_page(down), content_type="text/html")
            return "heap-down"
        if app.load.latency_s() > 0:
            app.stop_event.wait(app.load.latency_s())

        rule = app.faults.pick(path, raw_query)
        mode = rule.mode if rule else None
        request = ApiRequest(self.command, path, Query(raw_query), self.headers)
        if rule is not None:
            if mode == "latency":
                app.stop_event.wait(float(rule.get("ms", 1000)) / 1000)
            elif mode == "status":
                self._send_fault_status(rule)
                return mode
            elif mode == "reset":
                self._reset_connection()
                return mode
            elif mode == "stall":
                seconds = rule.get("seconds")
                app.stop_event.wait(float(seconds) if seconds is not None else None)
                self.close_connection = True  # hang up without an answer
                return mode
            elif mode == "malformed":
                body = rule.get("body", '{"data":[{"id":"malformed-1","value":0.5,}],"meta":{"limit":50')
                self._send(200, body.encode("utf-8"))
                return mode
            elif mode == "huge":
                self._send_huge(int(rule.get("bytes")), bool(rule.get("chunked")))
                return mode
            elif mode == "garbage":
                request.garbage = rule

        try:
            response = app.api.handle(request)
        except ApiError as error:
            response = ApiResponse(error.status, error.payload(), error.headers)
        except Exception:  # a bug in the fake: answer 500 and say why on stderr
            traceback.print_exc()
            response = ApiResponse(500, {"message": "Internal Server Error", "error": "fake server bug"})

        if response.body is not None:
            body = response.body
        elif mode == "garbage" and rule is not None and response.status == 200:
            body = GarbageRenderer().render(response.payload, response.kind, rule)
        else:
            body = compact_json(response.payload).encode("utf-8")
        delivery = rule if mode in ("truncate", "trickle") else None
        if response.status == 200 and delivery is None:
            headers = [("Content-Type", response.content_type), ("Content-Length", str(len(body)))]
            headers += [(k, str(v)) for k, v in (response.headers or {}).items()]
            if not app.load.send(self, 200, body, headers, app.stop_event):
                return "heap-crash"
            return mode
        self._send(response.status, body, response.headers, response.content_type, delivery)
        return mode

    # -- writing answers -----------------------------------------------------------

    _status_sent = 0  # status line written for the current API request (0: none)
    _bytes_sent = 0   # bytes written for it, headers included

    def _start(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self._status_sent = status
        self._bytes_sent += sum(len(chunk) for chunk in getattr(self, "_headers_buffer", [])) + 2
        self.end_headers()

    def _write(self, data: bytes) -> None:
        self.wfile.write(data)
        self._bytes_sent += len(data)

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None,
              content_type: str = "application/json; charset=utf-8",
              delivery: FaultRule | None = None) -> None:
        """Sends a whole answer, or a truncated / trickled one when ``delivery`` says so."""
        header_list = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        header_list += [(k, str(v)) for k, v in (headers or {}).items()]
        if delivery is not None:
            header_list.append(("Connection", "close"))
        self._start(status, header_list)
        if delivery is None:
            self._write(body)
        elif delivery.mode == "truncate":
            keep = delivery.get("bytes")
            keep = int(keep) if keep is not None else int(len(body) * float(delivery.get("fraction", 0.5)))
            self._write(body[:max(0, min(keep, len(body) - 1))])
            self.wfile.flush()
            self.close_connection = True
        else:  # trickle
            interval = float(delivery.get("interval_s", 1.0))
            step = max(int(delivery.get("bytes_per_tick", 1)), 1)
            for offset in range(0, len(body), step):
                self._write(body[offset:offset + step])
                self.wfile.flush()
                if self.server.app.stop_event.wait(interval):
                    break
            self.close_connection = True

    def _send_fault_status(self, rule: FaultRule) -> None:
        status = int(rule.get("status"))
        headers = dict(rule.get("headers") or {})
        if rule.get("retry_after") is not None:
            headers["Retry-After"] = str(rule.get("retry_after"))
        body = rule.get("body")
        content_type = rule.get("content_type")
        if body is None:
            if status == 524:  # what Cloudflare sends when the origin times out
                body = "error code: 524"
            elif status == 429:
                retry = str(rule.get("retry_after", ""))
                body = {"message": "Rate limit exceeded", "code": "rate_limited",
                        "details": {"retryAfterSeconds": int(retry) if retry.isdigit() else None}}
            else:
                body = {"message": _REASONS.get(status, "Error"), "error": _REASONS.get(status, "Error")}
        if isinstance(body, str):
            data = body.encode("utf-8")
            content_type = content_type or "text/plain; charset=utf-8"
        else:
            data = compact_json(body).encode("utf-8")
        self._send(status, data, headers, content_type or "application/json; charset=utf-8")

    def _send_huge(self, total: int, chunked: bool) -> None:
        """A valid JSON body of ``total`` bytes, streamed in 64 KiB pieces."""
        prefix, suffix = b'{"data":[],"meta":{},"padding":"', b'"}'
        fill = max(total - len(prefix) - len(suffix), 0)
        headers = [("Content-Type", "application/json; charset=utf-8"), ("Connection", "close")]
        headers.append(("Transfer-Encoding", "chunked") if chunked
                       else ("Content-Length", str(len(prefix) + fill + len(suffix))))
        self._start(200, headers)
        self.close_connection = True
        block = b"x" * 65536
        stop = self.server.app.stop_event

        def emit(data: bytes) -> None:
            self._write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)

        emit(prefix)
        left = fill
        while left > 0 and not stop.is_set():
            piece = block if left >= len(block) else block[:left]
            emit(piece)
            left -= len(piece)
        emit(suffix)
        if chunked:
            self._write(b"0\r\n\r\n")

    def _reset_connection(self) -> None:
        """Close with a TCP RST and no answer."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            self.connection.close()
        except OSError:
            pass
        self.close_connection = True

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass


_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 422: "Unprocessable Entity", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
            504: "Gateway Timeout", 524: "A Timeout Occurred"}


class FakeLangfuseServer(ThreadingHTTPServer):
    """Threaded HTTP(S) server on 127.0.0.1 that can stop listening for a while."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, app: FakeLangfuseApp, port: int, tls_context: ssl.SSLContext | None):
        self.app = app
        self.tls_context = tls_context
        self._listening = True
        super().__init__((BIND_HOST, port), FakeLangfuseHandler)

    def finish_request(self, request: socket.socket, client_address: Any) -> None:
        if self.tls_context is None:
            super().finish_request(request, client_address)
            return
        try:
            request.settimeout(10)
            tls_socket = self.tls_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            super().finish_request(tls_socket, client_address)
        finally:
            try:
                tls_socket.close()
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, socket.timeout, ssl.SSLError, OSError)):
            return  # clients that hang up are part of the tests
        super().handle_error(request, client_address)

    def _stop_listening(self) -> None:
        if self._listening:
            self.socket.close()
            self._listening = False

    def _listen_again(self) -> None:
        while not self.app.stop_event.is_set():
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((BIND_HOST, self.server_address[1]))
                sock.listen(self.request_queue_size)
            except OSError:
                sock.close()
                self.app.stop_event.wait(0.05)
                continue
            self.socket = sock
            self._listening = True
            return

    def serve_until_stopped(self) -> None:
        """Accept loop; closes the port during a 'refuse' outage, reopens it after."""
        while not self.app.stop_event.is_set():
            if self.app.outage.current() == "refuse":
                self._stop_listening()
                self.app.stop_event.wait(0.02)
                continue
            if not self._listening:
                self._listen_again()
                continue
            try:
                ready, _, _ = select.select([self.socket], [], [], 0.1)
            except (OSError, ValueError):
                continue
            if ready:
                self._handle_request_noblock()

    def server_close(self) -> None:
        if self._listening:
            super().server_close()
            self._listening = False


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Fake Langfuse server (127.0.0.1 only) for lfharvest tests.")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default 0)")
    parser.add_argument("--generation", choices=("current", "legacy"), default="current",
                        help="API generation to serve (default current)")
    parser.add_argument("--public-key", default="pk-lf-demo")
    parser.add_argument("--secret-key", default="sk-lf-demo")
    parser.add_argument("--project-id", default="proj-demo")
    data = parser.add_argument_group("generated data")
    data.add_argument("--traces", type=int, default=50, help="number of traces (default 50)")
    data.add_argument("--annotated-fraction", type=float, default=0.5,
                      help="fraction of traces with annotation scores (default 0.5)")
    data.add_argument("--big-fraction", type=float, default=0.0,
                      help="fraction of traces with one huge generation input (default 0)")
    data.add_argument("--big-size", type=int, default=6_000_000,
                      help="size in bytes of a huge input (default 6000000)")
    data.add_argument("--seed", type=int, default=1, help="RNG seed (default 1)")
    data.add_argument("--start-time", default=None,
                      help="ISO time; data is spread over the --days before it (default now)")
    data.add_argument("--days", type=float, default=7.0, help="span of the generated data (default 7)")
    data.add_argument("--demo", action="store_true",
                      help="a small friendly dataset (40 traces, Good/Bad labels, ratings, corrections)")
    behaviour = parser.add_argument_group("behaviour")
    behaviour.add_argument("--tls-cert", default=None, help="PEM certificate: serve HTTPS")
    behaviour.add_argument("--tls-key", default=None, help="PEM private key for --tls-cert")
    behaviour.add_argument("--rate-limit-per-minute", type=int, default=None,
                           help="fixed-window limit on authenticated API requests (default none)")
    behaviour.add_argument("--rate-limit-window-s", type=float, default=60.0,
                           help="rate-limit window length in seconds (default 60)")
    behaviour.add_argument("--rate-limit-langfuse-quirk", action="store_true",
                           help="reject the request that takes the last point, as Langfuse does")
    behaviour.add_argument("--duplicate-across-pages", action="store_true",
                           help="repeat the last item of a cursor page at the top of the next")
    behaviour.add_argument("--v3-require-from-timestamp", action="store_true",
                           help="v3 scores: 400 without fromTimestamp or an id/entity filter")
    behaviour.add_argument("--v3-layout", choices=("flat", "nested"), default="flat",
                           help="v3 field groups flat as in the spec (default) or nested objects")
    behaviour.add_argument("--log-requests", default=None, help="append one line per API request here")
    server_load.add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        print("--tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    config = ServerConfig(args)
    tls_context = None
    if args.tls_cert:
        tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls_context.load_cert_chain(args.tls_cert, args.tls_key)
    app = FakeLangfuseApp(config)
    server = FakeLangfuseServer(app, args.port, tls_context)

    def stop(signum: int, frame: Any) -> None:
        app.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    scheme = "https" if tls_context else "http"
    print(f"LISTENING {scheme}://{BIND_HOST}:{server.server_address[1]}", flush=True)
    try:
        server.serve_until_stopped()
    finally:
        server.server_close()
        if app.request_log:
            app.request_log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
