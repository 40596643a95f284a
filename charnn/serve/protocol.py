"""The OpenAI completions protocol as charnn speaks it: a request's fields checked one by one (a
wrong type or range is a 400 naming the field, as the OpenAI API answers), and the response and
error objects. Fields charnn does not use (best_of, presence_penalty, user, ...) are ignored, as
clients send them by default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

MAX_BODY_BYTES = 1_000_000
MAX_PROMPT_CHARS = 20_000
MAX_N = 16
MAX_LOGPROBS = 20
MAX_STOPS, MAX_STOP_CHARS = 4, 64
MAX_SEED = 2**63 - 1


class ApiError(Exception):
    """An error answered as the OpenAI API shapes it: {"error": {message, type, param, code}}."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error", headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass
class CompletionRequest:
    model: str
    prompts: list[str]
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    n: int = 1
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    echo: bool = False
    logprobs: int | None = None
    stream: bool = False

    @property
    def choices(self) -> int:
        return len(self.prompts) * self.n


def parse_json(body: bytes) -> dict:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ApiError(400, f"the request body is not valid JSON ({str(e)[:120]}); send a JSON object") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return data


def _number(data: dict, name: str, default, low: float, high: float, integer: bool = False, nullable: bool = True):
    value = data.get(name, default)
    if value is None and nullable:
        return default
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ApiError(400, f"{name} must be {'an integer' if integer else 'a number'}, got {json.dumps(value)[:40]}",
                       param=name)
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be between {low} and {high}, got {value}", param=name)
    return value


def _flag(data: dict, name: str) -> bool:
    value = data.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(400, f"{name} must be true or false, got {json.dumps(value)[:40]}", param=name)
    return value


def _strings(data: dict, name: str, max_items: int, max_chars: int, allow_empty_string: bool) -> list[str]:
    value = data.get(name)
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(s, str) for s in items):
        raise ApiError(400, f"{name} must be a string or a non-empty list of strings", param=name)
    if len(items) > max_items:
        raise ApiError(400, f"{name} may hold at most {max_items} strings, got {len(items)}", param=name)
    for s in items:
        if len(s) > max_chars:
            raise ApiError(400, f"{name} is {len(s):,} characters long; at most {max_chars:,} are accepted", param=name)
        if not s and not allow_empty_string:
            raise ApiError(400, f"{name} must not hold an empty string", param=name)
    return items


def completion_request(data: dict, max_tokens: int, models: list[str]) -> CompletionRequest:
    """The checked request; the server's own limit on max_tokens is `max_tokens`."""
    model = data.get("model")
    if model is None and len(models) == 1:
        model = models[0]
    if not isinstance(model, str):
        raise ApiError(400, "model must be a string: one of " + ", ".join(models), param="model")
    if model not in models:
        raise ApiError(404, f"the model {model!r} does not exist here; the models are " + ", ".join(models),
                       param="model", code="model_not_found")
    prompts = _strings(data, "prompt", 64, MAX_PROMPT_CHARS, True) if data.get("prompt", "") != "" else [""]
    stop = _strings(data, "stop", MAX_STOPS, MAX_STOP_CHARS, False) if data.get("stop") is not None else []
    logprobs = data.get("logprobs")
    req = CompletionRequest(
        model=model, prompts=prompts, stop=stop,
        max_tokens=_number(data, "max_tokens", 16, 0, max_tokens, integer=True),
        temperature=float(_number(data, "temperature", 1.0, 0, 10)),
        top_p=float(_number(data, "top_p", 1.0, 0, 1)),
        top_k=_number(data, "top_k", 0, 0, 1_000_000, integer=True),
        n=_number(data, "n", 1, 1, MAX_N, integer=True),
        seed=_number(data, "seed", None, 0, MAX_SEED, integer=True),
        echo=_flag(data, "echo"), stream=_flag(data, "stream"),
        logprobs=None if logprobs is None else _number(data, "logprobs", 0, 0, MAX_LOGPROBS, integer=True),
    )
    if req.top_p == 0:
        raise ApiError(400, "top_p must be greater than 0 (1 keeps every character); for the likeliest text "
                            "use temperature 0", param="top_p")
    return req


def logprobs_object(pieces: list, offset: int) -> dict:
    """The completions API's logprobs: tokens (characters), their log-probabilities, the top ones
    at each step and each token's offset in the choice's text."""
    tokens, token_logprobs, top, offsets = [], [], [], []
    for piece in pieces:
        tokens.append(piece.text)
        token_logprobs.append(piece.logprob)
        top.append(piece.top or None)
        offsets.append(offset)
        offset += len(piece.text)
    return {"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top, "text_offset": offsets}
