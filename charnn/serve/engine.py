"""Continuous batching: one thread steps every live stream of every model together, one character
per step, through charnn.Batch (a stream with a seed reads on its own, exactly as `charnn
sample` does). Requests join and leave at step boundaries; a request whose client went away is
dropped at the next step. What each step made reaches the requests' asyncio queues in one
call into the event loop per step.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

from charnn.errors import CharnnError
from charnn.serve.protocol import ApiError, CompletionRequest


@dataclass
class Delta:
    """New text of one choice: what a stream chunk carries."""

    index: int
    text: str
    pieces: list
    offset: int  # where `text` starts in the choice's text
    finish_reason: str | None = None


class Choice:
    """One text of a request: its generation, and the pieces made but not yet sent, with stop
    sequences cut off (text that might begin a stop sequence is held back until it cannot).
    Only what is unsent is kept, so a long text costs nothing per step."""

    def __init__(self, index: int, generation, stops: list[str]):
        self.index, self.generation, self.stops = index, generation, stops
        self.longest = max(map(len, stops), default=0)
        self.pending: list = []  # pieces made, not sent
        self.prompt_chars = 0  # how much of the pending text is the echoed prompt (never matched against stops)
        self.made = ""  # the pending generated text
        self.sent = 0  # characters sent
        self.completion_chars = 0
        self.finish_reason: str | None = None

    def add(self, piece) -> None:
        self.pending.append(piece)
        if piece.prompt:
            self.prompt_chars += len(piece.text)
            return
        self.completion_chars += 1
        self.made += piece.text
        if self.stops:
            found = [i for i in (self.made.find(s) for s in self.stops) if i >= 0]
            if found:
                self._cut(min(found))

    def _cut(self, at: int) -> None:
        """End the text at `at` characters into the pending generated text: a stop sequence starts there."""
        keep, length = [], 0
        for piece in self.pending:
            size = len(piece.text)
            if not piece.prompt and length + size > self.prompt_chars + at:
                break
            keep.append(piece)
            length += size
        self.pending, self.made = keep, self.made[:at]
        self.finish_reason = "stop"

    def finish(self) -> None:
        if self.finish_reason is None:
            self.finish_reason = "length"

    def delta(self) -> Delta | None:
        """What can be sent now (all of it once finished; else all but a possible start of a stop)."""
        hold = 0
        if self.finish_reason is None and self.stops:
            tail = self.made[-(self.longest - 1):] if self.longest > 1 else ""
            hold = max((k for s in self.stops for k in range(1, min(len(s) - 1, len(tail)) + 1)
                        if tail.endswith(s[:k])), default=0)
        release = self.prompt_chars + len(self.made) - hold
        pieces, length = [], 0
        while self.pending and length + len(self.pending[0].text) <= release:
            length += len(self.pending[0].text)
            pieces.append(self.pending.pop(0))
        if not pieces and self.finish_reason is None:
            return None
        text = "".join(p.text for p in pieces)
        generated = length - min(length, self.prompt_chars)
        self.prompt_chars -= length - generated
        self.made = self.made[generated:]
        out = Delta(self.index, text, pieces, self.sent, self.finish_reason)
        self.sent += length
        return out


@dataclass
class Job:
    """A request being served: its choices, and the queue its handler reads deltas from."""

    request: CompletionRequest
    model_name: str
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    choices: list[Choice] = field(default_factory=list)
    prompt_chars: int = 0
    cancelled: bool = False
    started: float = field(default_factory=time.perf_counter)

    @property
    def finished(self) -> bool:
        return all(c.finish_reason is not None for c in self.choices)


END = object()  # the last item a job's queue receives
CLOSED = object()  # the server is stopping: the stream ends here


class Engine:
    """The stepping thread. submit() from the event loop; the thread does the rest."""

    def __init__(self, models: dict, max_streams: int):
        self.models, self.max_streams = models, max_streams
        self.batches = {name: model.batch() for name, model in models.items()}
        self.cond = threading.Condition()
        self.inbox: list[Job] = []
        self.jobs: list[Job] = []
        self.streams = 0  # choices admitted and not finished
        self.pending: dict[int, Job] = {}  # jobs with something not yet handed to their event loop
        self.in_flight: set = set()  # event loops that have not yet run the last hand-over
        self.stopping = False
        self.steps = 0
        self.thread = threading.Thread(target=self._run, name="charnn-engine", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def request_stop(self) -> None:
        """End every stream (their clients get what was made so far); the thread ends after it."""
        with self.cond:
            self.stopping = True
            self.cond.notify()

    def stop(self) -> None:
        self.request_stop()
        if self.thread.is_alive():
            self.thread.join(timeout=10)

    def cancel(self, job: Job) -> None:
        """The client went away: the thread frees the job's streams at its next step."""
        with self.cond:
            job.cancelled = True
            self.cond.notify()

    def submit(self, job: Job) -> None:
        """Admit a request: its generations are made here (a bad prompt is a 400 now), stepped by the thread."""
        model = self.models[job.model_name]
        req = job.request
        generations = []
        for p, prompt in enumerate(req.prompts):
            for k in range(req.n):
                seed = None if req.seed is None else req.seed + k  # choice k of a prompt: seed + k
                try:
                    generations.append(model.generation(
                        prompt, length=req.max_tokens, temperature=max(req.temperature, 1e-6), top_k=req.top_k,
                        top_p=req.top_p, greedy=req.temperature == 0, rng_seed=seed,
                        logprobs=req.logprobs or 0, echo=req.echo))
                except CharnnError as e:
                    raise ApiError(400, str(e), param="prompt") from None
        job.prompt_chars = sum(len(p) for p in req.prompts)
        if len(generations) > self.max_streams:
            raise ApiError(400, f"the request asks for {len(generations)} texts at once (prompts x n), more than this "
                                f"server makes at once ({self.max_streams}, --max-streams)", param="n")
        with self.cond:
            if self.stopping:
                raise ApiError(503, "the server is shutting down", kind="server_error")
            if self.streams + len(generations) > self.max_streams:
                raise ApiError(429, f"the server is serving {self.streams} streams, its limit is {self.max_streams} "
                                    "(--max-streams); retry in a moment", kind="rate_limit_error",
                               code="too_many_streams", headers={"Retry-After": "1"})
            self.streams += len(generations)
            job.choices = [Choice(i, g, req.stop) for i, g in enumerate(generations)]
            self.inbox.append(job)
            self.cond.notify()

    # ---- the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        owner: dict[int, tuple[Job, Choice]] = {}
        while True:
            with self.cond:
                while not (self.stopping or self.inbox or self._work()):
                    self.cond.wait()
                if self.stopping:
                    break
                new, self.inbox = self.inbox, []
            for job in new:
                self._join(job, owner)
                self.pending[id(job)] = job
            self._drop_cancelled(owner)
            for name, batch in self.batches.items():
                if batch.size:
                    self._step(name, batch, owner)
            self.steps += 1
            self._deliver(owner)
        self._close_all(owner)

    def _work(self) -> bool:
        """Something to do besides waiting: streams to step, a cancelled job, or news for an idle loop."""
        return (any(batch.size for batch in self.batches.values()) or any(job.cancelled for job in self.jobs)
                or any(job.loop not in self.in_flight for job in self.pending.values()))

    def _step(self, name: str, batch, owner: dict) -> None:
        try:
            made = batch.step()
        except Exception as e:  # noqa: BLE001  a step that fails ends its model's requests, not the server
            self._fail(name, owner, e)
            return
        for generation, piece in made:
            job, choice = owner[id(generation)]
            if piece is not None:
                choice.add(piece)
                if choice.finish_reason == "stop":
                    batch.remove(generation)
            if generation.done and choice.finish_reason is None:
                choice.finish()
            self.pending[id(job)] = job

    def _join(self, job: Job, owner: dict) -> None:
        batch = self.batches[job.model_name]
        for choice in job.choices:
            for piece in choice.generation.opening():
                choice.add(piece)
            owner[id(choice.generation)] = (job, choice)
            if choice.generation.done or choice.finish_reason:
                choice.finish()
            else:
                batch.add(choice.generation)
        self.jobs.append(job)

    def _drop_cancelled(self, owner: dict) -> None:
        for job in [j for j in self.jobs if j.cancelled]:
            self._release(job, owner)
            self.pending.pop(id(job), None)

    def _release(self, job: Job, owner: dict) -> None:
        batch = self.batches[job.model_name]
        for choice in job.choices:
            if choice.generation in batch.generations:
                batch.remove(choice.generation)
            owner.pop(id(choice.generation), None)
        self.jobs.remove(job)
        with self.cond:
            self.streams -= len(job.choices)

    def _deliver(self, owner: dict) -> None:
        """Hand what the steps made to the event loops, one hand-over in flight per loop: while a loop
        is busy, its jobs' text accumulates and goes in one larger piece (less work per character
        exactly when the loop is the bottleneck)."""
        by_loop: dict = {}
        for key, job in list(self.pending.items()):
            if job.loop in self.in_flight:
                continue
            del self.pending[key]
            deltas = [d for d in (c.delta() for c in job.choices) if d is not None]
            done = job.finished
            if done and job in self.jobs:
                self._release(job, owner)
            if deltas or done:
                by_loop.setdefault(job.loop, []).append((job, deltas, done))
        for loop, items in by_loop.items():
            with self.cond:
                self.in_flight.add(loop)
            if not _call(loop, self._hand_over, loop, items):
                with self.cond:
                    self.in_flight.discard(loop)  # a closed loop: nobody to wait for

    def _hand_over(self, loop, items) -> None:
        """(In the event loop.) Put the deltas into the jobs' queues; the thread may send more."""
        _dispatch(items)
        with self.cond:
            self.in_flight.discard(loop)
            self.cond.notify()

    def _fail(self, name: str, owner: dict, error: Exception) -> None:
        failed = [job for job in self.jobs if job.model_name == name]
        for job in failed:
            self._release(job, owner)
            _call(job.loop, _dispatch, [(job, [ApiError(500, f"the model failed: {type(error).__name__}",
                                                         kind="server_error")], True)])
        self.batches[name] = self.models[name].batch()

    def _close_all(self, owner: dict) -> None:
        """The server is stopping: every job gets what it made so far, then the end of its stream."""
        for job in list(self.jobs) + self.inbox:
            deltas = [d for d in (c.delta() for c in job.choices) if d is not None] if job in self.jobs else []
            if job in self.jobs:
                self._release(job, owner)
            _call(job.loop, _dispatch, [(job, deltas + [CLOSED], True)])


def _call(loop: asyncio.AbstractEventLoop, fn, *args) -> bool:
    """Run fn(*args) in the event loop soon; False when the loop is closed (nobody is listening)."""
    try:
        loop.call_soon_threadsafe(fn, *args)
        return True
    except RuntimeError:
        return False


def _dispatch(items) -> None:
    for job, deltas, done in items:
        for delta in deltas:
            job.queue.put_nowait(delta)
        if done:
            job.queue.put_nowait(END)
