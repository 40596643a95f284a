"""The HTTP side of charnn serve: FastAPI routes over the Engine, in the OpenAI completions shape.

    POST /v1/completions   text for a prompt (or several), streamed as server-sent events on request
    GET  /v1/models        the models, with cell, size and validation loss
    GET  /health           liveness (the one route open without the API key)
    GET  /                 a page to try the models in a browser

Every answer that is not a 2xx is an OpenAI-style error object; nothing answers a traceback.
Imported only to serve (FastAPI is the [serve] extra).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import sys
import time
import uuid
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from charnn.serve.engine import CLOSED, END, Delta, Engine, Job
from charnn.serve.protocol import MAX_BODY_BYTES, ApiError, completion_request, logprobs_object, parse_json


def model_card(name: str, model) -> dict:
    """A /v1/models entry: the OpenAI fields, and charnn's in extra fields."""
    m, val = model.config.model, model.val_loss
    return {"id": name, "object": "model", "created": int(model.path.stat().st_mtime) if model.path else 0,
            "owned_by": "charnn", "cell": m.cell, "num_layers": m.num_layers, "hidden_size": m.hidden_size,
            "parameters": model.num_parameters, "vocab_size": model.vocab.size,
            "val_loss": val, "val_bits_per_char": None if val is None else val / math.log(2),
            "checkpoint": str(model.path) if model.path else None}


def create_app(models: dict, *, api_key: str | None = None, max_tokens: int = 2048, max_streams: int = 64,
               log=None):
    """The ASGI app serving `models` (name -> charnn.Model); `log(line)` gets one line per request."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    engine = Engine(models, max_streams)

    async def lifespan(app):
        engine.start()
        yield
        engine.stop()

    app = FastAPI(title="charnn serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine
    app.add_middleware(Guard, api_key=api_key, log=log)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError):
        return _error(e)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        return _error(ApiError(e.status_code, f"{request.method} {request.url.path}: {e.detail}; the routes are "
                                              "POST /v1/completions, GET /v1/models, GET /health and GET /"))

    _routes(app, engine, models, max_tokens)
    return app


def _error(e: ApiError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status, headers=e.headers)


def _routes(app, engine: Engine, models: dict, max_tokens: int) -> None:
    cards = [model_card(name, model) for name, model in models.items()]

    @app.get("/health")
    async def health():
        return {"status": "ok", "models": len(models), "streams": engine.streams}

    @app.get("/v1/models")
    async def list_models():
        return {"object": "list", "data": cards}

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return resources.files("charnn.serve").joinpath("page.html").read_text(encoding="utf-8")

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await _read_body(request)
        req = completion_request(parse_json(body), max_tokens, list(models))
        job = Job(req, req.model, asyncio.get_running_loop())
        engine.submit(job)
        if req.stream:
            return StreamingResponse(_events(job, request, engine), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        try:
            result = await _collect(job)
        finally:
            engine.cancel(job)  # a no-op once finished; frees the streams of a client that went away
        request.state.chars = result["usage"]["completion_tokens"]
        return result


class Guard:
    """ASGI middleware: the API key, one log line per request (for a stream, when it ends, with its
    characters), and a JSON 500 instead of any exception (nothing reaches the client or the log as
    a traceback)."""

    def __init__(self, app, api_key: str | None, log):
        self.app, self.api_key, self.log = app, api_key, log

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [None]
        scope.setdefault("state", {})["chars"] = 0

        async def sending(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            _authorize(scope["path"], headers, self.api_key)
            await self.app(scope, receive, sending)
        except ApiError as e:
            await _send_json(sending, e.status, e.body(), e.headers)
        except Exception as e:  # noqa: BLE001  the client gets a JSON error; the log one line
            self.log(f"error: {scope['method']} {scope['path']}: {type(e).__name__}: {e}")
            if status[0] is None:
                await _send_json(sending, 500, ApiError(500, "the server failed to answer this request",
                                                        kind="server_error").body(), {})
        finally:
            self.log(f"{scope['method']} {scope['path']} {status[0]} {scope['state'].get('chars', 0)} chars "
                     f"{time.perf_counter() - start:.3f} s")


async def _send_json(send, status: int, body: dict, headers: dict) -> None:
    raw = json.dumps(body).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    head += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": raw})


def _authorize(path: str, headers: dict, api_key: str | None) -> None:
    if api_key is None or path == "/health":
        return
    header = headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise ApiError(401, "this server needs an API key: send the header 'Authorization: Bearer KEY'",
                       code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(given.strip().encode(), api_key.encode()):  # constant time
        raise ApiError(401, "incorrect API key", code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


async def _read_body(request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, f"the request body is {int(declared):,} bytes; at most {MAX_BODY_BYTES:,} are accepted")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise ApiError(413, f"the request body is over {MAX_BODY_BYTES:,} bytes, the most accepted")
    return bytes(body)


def _ids() -> tuple[str, int]:
    return f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())


async def _collect(job: Job) -> dict:
    """A whole (non-streamed) completion."""
    texts = {c.index: [] for c in job.choices}
    pieces = {c.index: [] for c in job.choices}
    finish = {}
    while True:
        item = await job.queue.get()
        if item is END:
            break
        if isinstance(item, ApiError):
            raise item
        if item is CLOSED:
            raise ApiError(503, "the server is shutting down", kind="server_error")
        texts[item.index].append(item.text)
        pieces[item.index] += item.pieces
        if item.finish_reason:
            finish[item.index] = item.finish_reason
    cid, created = _ids()
    req = job.request
    choices = [{"text": "".join(texts[i]), "index": i,
                "logprobs": logprobs_object(pieces[i], 0) if req.logprobs is not None else None,
                "finish_reason": finish.get(i, "length")} for i in sorted(texts)]
    completion = sum(c.completion_chars for c in job.choices)
    return {"id": cid, "object": "text_completion", "created": created, "model": job.model_name, "choices": choices,
            "usage": {"prompt_tokens": job.prompt_chars, "completion_tokens": completion,
                      "total_tokens": job.prompt_chars + completion}}


async def _events(job: Job, request, engine: Engine):
    """Server-sent events: a chunk per choice with new text (what arrived since the last one, so a
    slow client gets longer pieces), then `data: [DONE]`."""
    cid, created = _ids()
    want_logprobs = job.request.logprobs is not None
    # every chunk is this JSON object with its text, index, logprobs and finish_reason: written from
    # a prefix made once, as json.dumps of the whole object per chunk cost the event loop most of its time
    head = (f'data: {{"id": "{cid}", "object": "text_completion", "created": {created}, '
            f'"model": {json.dumps(job.model_name, ensure_ascii=False)}, "choices": [{{"text": ')
    try:
        while True:
            items = [await job.queue.get()]
            while not job.queue.empty():
                items.append(job.queue.get_nowait())
            done = any(item is END or item is CLOSED for item in items)
            out = []
            for delta in _merged([i for i in items if isinstance(i, Delta)]):
                request.state.chars += len(delta.text)
                logprobs = json.dumps(logprobs_object(delta.pieces, delta.offset)) if want_logprobs else "null"
                finish = "null" if delta.finish_reason is None else f'"{delta.finish_reason}"'
                out.append(f'{head}{json.dumps(delta.text, ensure_ascii=False)}, "index": {delta.index}, '
                           f'"logprobs": {logprobs}, "finish_reason": {finish}}}]}}\n\n')
            out += [f"data: {json.dumps(item.body())}\n\n" for item in items if isinstance(item, ApiError)]
            if out:
                yield "".join(out)
            if done:
                if not any(item is CLOSED for item in items):
                    yield "data: [DONE]\n\n"
                return
    finally:
        engine.cancel(job)  # the client went away (or the stream ended): the engine frees its slots


def _merged(deltas: list[Delta]) -> list[Delta]:
    """Consecutive deltas of a choice as one."""
    out: dict[int, Delta] = {}
    for d in deltas:
        if d.index in out:
            m = out[d.index]
            out[d.index] = Delta(d.index, m.text + d.text, m.pieces + d.pieces, m.offset, d.finish_reason)
        else:
            out[d.index] = d
    return list(out.values())
