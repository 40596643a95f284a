"""charnn serve, tested for real: a server process on a free port, OpenAI's own client, curl,
concurrent streaming clients, disconnects, SIGTERM, a busy port, the API key, a table of bad
requests, and the page in headless Chromium."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import charnn

pytest.importorskip("fastapi", reason="charnn serve needs the serve extra: pip install -e '.[serve]'")
pytest.importorskip("uvicorn", reason="charnn serve needs the serve extra: pip install -e '.[serve]'")
httpx = pytest.importorskip("httpx", reason="the tests talk to the server with httpx: pip install httpx")

TEXT = Path(__file__).resolve().parents[1].joinpath("data", "rnn_notes.txt").read_text(encoding="utf-8")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    out = {}
    for cell in ("lstm", "gru"):
        run = charnn.train({"data": {"text": TEXT}, "model": {"cell": cell, "hidden_size": 24, "num_layers": 2},
                            "train": {"steps": 120, "batch_size": 16, "seq_len": 32, "lr": 0.01},
                            "run": {"dir": str(folder / "runs"), "name": f"notes-{cell}", "eval_every": 0}},
                           progress=False)
        out[cell] = run.dir / "best.npz"
    return out


class Server:
    """`charnn serve` in a process of its own; .url, .log (its stderr so far), .stop()."""

    def __init__(self, *args, env=None, port=None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "charnn", "serve", *map(str, args), "--port", str(self.port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ, **(env or {})))
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited: {self.log}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("the server did not start")

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def stop(self, sig=signal.SIGTERM, timeout=15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


@pytest.fixture(scope="module")
def server(models):
    s = Server(models["lstm"], models["gru"], "--max-tokens", "100000")
    yield s
    assert s.stop() == 0


def post(server, body, **kwargs):
    return httpx.post(server.url + "/v1/completions", json=body, timeout=60, **kwargs)


def sse_text(lines) -> tuple[dict, bool]:
    """(choice index -> text, whether [DONE] came) from server-sent event lines."""
    texts, done = {}, False
    for line in lines:
        if not line.startswith("data: "):
            continue
        data = line[len("data: "):]
        if data == "[DONE]":
            done = True
            continue
        for choice in json.loads(data)["choices"]:
            texts[choice["index"]] = texts.get(choice["index"], "") + choice["text"]
    return texts, done


# ---- the protocol, with real clients ------------------------------------------------------------------


def test_openai_client_gets_charnn_samples_text_streamed_and_not(server, models, cli):
    openai = pytest.importorskip("openai", reason="the test extra installs the openai client: pip install openai")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    settings = dict(model="notes-lstm", prompt="The network ", max_tokens=200, temperature=0.8, top_p=0.9, seed=7)
    whole = client.completions.create(**settings, extra_body={"top_k": 12})
    streamed = "".join(c.choices[0].text for c in client.completions.create(**settings, stream=True,
                                                                            extra_body={"top_k": 12}))
    code, out, err = cli("sample", "-c", models["lstm"], "--seed", "The network ", "--length", "200",
                         "--temperature", "0.8", "--top-p", "0.9", "--top-k", "12", "--rng-seed", "7")
    assert code == 0, err
    assert "The network " + whole.choices[0].text + "\n" == out
    assert streamed == whole.choices[0].text
    assert whole.object == "text_completion" and whole.choices[0].finish_reason == "length"
    assert whole.usage.completion_tokens == 200 and whole.usage.prompt_tokens == len("The network ")


def test_curl_streams(server, models):
    if shutil.which("curl") is None:
        pytest.skip("needs curl")
    body = json.dumps({"model": "notes-gru", "prompt": "A ", "max_tokens": 120, "seed": 3, "stream": True})
    proc = subprocess.run(["curl", "-sN", server.url + "/v1/completions", "-H", "Content-Type: application/json",
                           "-d", body], capture_output=True, text=True, timeout=60)
    texts, done = sse_text(proc.stdout.splitlines())
    assert done and texts == {0: charnn.load(models["gru"]).sample(seed="A ", length=120, rng_seed=3)}


def test_temperature_zero_is_greedy_and_stop_cuts_the_text(server, models):
    model = charnn.load(models["lstm"])
    greedy = model.sample(seed="The ", length=150, greedy=True)
    r = post(server, {"model": "notes-lstm", "prompt": "The ", "max_tokens": 150, "temperature": 0}).json()
    assert r["choices"][0]["text"] == greedy
    stop = greedy[40:43]
    cut = greedy[:greedy.index(stop)]
    for stream in (False, True):
        body = {"model": "notes-lstm", "prompt": "The ", "max_tokens": 150, "temperature": 0, "stop": [stop, "\u263a"],
                "stream": stream}
        if stream:
            with httpx.stream("POST", server.url + "/v1/completions", json=body, timeout=60) as response:
                lines = list(response.iter_lines())
            texts, done = sse_text(lines)
            assert done and texts[0] == cut
            chunks = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
            assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
        else:
            choice = post(server, body).json()["choices"][0]
            assert choice["text"] == cut and choice["finish_reason"] == "stop"


def test_echo_logprobs_n_and_several_prompts(server, models):
    model = charnn.load(models["gru"])
    r = post(server, {"model": "notes-gru", "prompt": ["ab", "The "], "max_tokens": 20, "n": 2, "seed": 5,
                      "echo": True, "logprobs": 3, "foo": "ignored"}).json()
    assert [c["index"] for c in r["choices"]] == [0, 1, 2, 3]
    for i, (prompt, k) in enumerate([("ab", 0), ("ab", 1), ("The ", 0), ("The ", 1)]):
        choice = r["choices"][i]
        assert choice["text"] == prompt + model.sample(seed=prompt, length=20, rng_seed=5 + k)
        lp = choice["logprobs"]
        assert "".join(lp["tokens"]) == choice["text"] and lp["token_logprobs"][0] is None
        assert lp["text_offset"] == list(range(len(choice["text"])))
        assert all(len(top) == 3 for top in lp["top_logprobs"][1:])
    probs = model.probabilities("ab")[0]  # after "a": the logprob of "b"
    assert r["choices"][0]["logprobs"]["token_logprobs"][1] == pytest.approx(np.log(probs[model.vocab.chars.index("b")]),
                                                                               abs=1e-5)
    assert r["usage"]["prompt_tokens"] == 6 and r["usage"]["completion_tokens"] == 80


def test_models_health_and_page(server):
    cards = httpx.get(server.url + "/v1/models").json()
    assert cards["object"] == "list" and [m["id"] for m in cards["data"]] == ["notes-lstm", "notes-gru"]
    lstm = cards["data"][0]
    assert lstm["cell"] == "lstm" and lstm["hidden_size"] == 24 and lstm["num_layers"] == 2 and lstm["parameters"] > 0
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and "v1/completions" in page.text and "<script src" not in page.text
    assert "POST /v1/completions 200" in server.log and " chars " in server.log


# ---- continuous batching ------------------------------------------------------------------------------


def _stream(url, body, out, index):
    with httpx.stream("POST", url + "/v1/completions", json=body, timeout=120) as response:
        out[index] = sse_text(response.iter_lines())


@pytest.mark.parametrize("clients", [8, 32])
def test_concurrent_streams_each_get_their_own_text(server, models, clients):
    """Seeded requests served side by side give exactly the text each gives alone (charnn sample's)."""
    model = charnn.load(models["lstm"])
    out = {}
    threads = [threading.Thread(target=_stream, args=(server.url, {"model": "notes-lstm", "prompt": "It ",
                                                                   "max_tokens": 150, "seed": 100 + i, "stream": True,
                                                                   "temperature": 0.9}, out, i))
               for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(out) == list(range(clients))
    for i in range(clients):
        texts, done = out[i]
        assert done and texts[0] == model.sample(seed="It ", length=150, rng_seed=100 + i, temperature=0.9), i


def test_unseeded_requests_share_the_batch_and_finish(server):
    out = {}
    threads = [threading.Thread(target=_stream, args=(server.url, {"model": "notes-gru", "prompt": "x" * (i + 1),
                                                                   "max_tokens": 100 + 10 * i, "stream": True}, out, i))
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(out[i][1] and len(out[i][0][0]) == 100 + 10 * i for i in range(8))


def test_a_client_that_goes_away_frees_its_stream(server):
    body = {"model": "notes-lstm", "prompt": "The ", "max_tokens": 100000, "stream": True}
    with httpx.stream("POST", server.url + "/v1/completions", json=body, timeout=60) as response:
        for _ in response.iter_lines():
            if httpx.get(server.url + "/health").json()["streams"] == 1:
                break
    deadline = time.time() + 5
    while httpx.get(server.url + "/health").json()["streams"] and time.time() < deadline:
        time.sleep(0.02)
    assert httpx.get(server.url + "/health").json()["streams"] == 0
    assert post(server, {"model": "notes-lstm", "prompt": "a", "max_tokens": 5}).status_code == 200


def test_too_many_streams_is_429_with_retry_after(models):
    s = Server(models["gru"], "--max-streams", "2", "--max-tokens", "100000")
    try:
        body = {"prompt": "The ", "max_tokens": 100000, "stream": True}
        with httpx.stream("POST", s.url + "/v1/completions", json=dict(body, n=2), timeout=60) as response:
            lines = response.iter_lines()  # kept: a dropped iterator closes the connection
            next(lines)
            r = post(s, {"prompt": "a", "max_tokens": 3})
            assert r.status_code == 429 and r.headers["retry-after"] == "1"
            assert r.json()["error"]["type"] == "rate_limit_error"
    finally:
        assert s.stop() == 0


# ---- the process: SIGTERM, a busy port, the key, the host --------------------------------------------


def test_sigterm_closes_streams_and_exits_0(models):
    s = Server(models["lstm"], "--max-tokens", "1000000")
    lines = []

    def reader():
        with httpx.stream("POST", s.url + "/v1/completions", json={"prompt": "The ", "max_tokens": 1000000,
                                                                    "stream": True}, timeout=60) as response:
            lines.extend(response.iter_lines())

    t = threading.Thread(target=reader)
    t.start()
    while not lines and t.is_alive():
        time.sleep(0.02)
    start = time.time()
    assert s.stop(signal.SIGTERM) == 0
    t.join(timeout=10)
    assert not t.is_alive() and time.time() - start < 10  # the stream was closed, not waited for
    assert sse_text(lines)[0][0] and "Traceback" not in s.log


def test_a_second_server_on_a_busy_port_is_a_one_line_error(models, server):
    proc = subprocess.run([sys.executable, "-m", "charnn", "serve", str(models["lstm"]), "--port", str(server.port)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"error: port {server.port} on 127.0.0.1 is in use (another server?); "
                                                "give another --port"]


def test_the_api_key_guards_every_route_but_health(models):
    s = Server(models["lstm"], env={"CHARNN_API_KEY": "s3cret"})
    try:
        for method, path in (("GET", "/v1/models"), ("POST", "/v1/completions"), ("GET", "/")):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
                r = httpx.request(method, s.url + path, headers=headers, json={"prompt": "a"})
                assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key", (path, headers)
        assert httpx.get(s.url + "/health").status_code == 200
        ok = {"Authorization": "Bearer s3cret"}
        assert httpx.get(s.url + "/v1/models", headers=ok).status_code == 200
        assert httpx.post(s.url + "/v1/completions", headers=ok, json={"prompt": "a", "max_tokens": 4}).status_code == 200
    finally:
        assert s.stop() == 0


def test_all_interfaces_warn_once(models):
    s = Server(models["lstm"], "--host", "0.0.0.0")
    try:
        assert s.log.count("warning: serving on every network") == 1 and "--api-key" in s.log
    finally:
        assert s.stop() == 0


def test_serve_without_a_model_or_with_a_bad_one_is_a_one_line_error(tmp_path):
    (tmp_path / "notes.txt").write_text("text", encoding="utf-8")
    for args in ([], [tmp_path / "notes.txt"], [tmp_path / "missing.npz"]):
        proc = subprocess.run([sys.executable, "-m", "charnn", "serve", *map(str, args), "--port", str(free_port())],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert proc.stderr.startswith("error: ")


# ---- bad requests -------------------------------------------------------------------------------------

BAD = [
    (b"{not json", 400, None),
    (b"[1, 2]", 400, None),
    ({"model": "nope"}, 404, "model"),
    ({"model": 3}, 400, "model"),
    ({"prompt": 5}, 400, "prompt"),
    ({"prompt": [1, 2, 3]}, 400, "prompt"),
    ({"prompt": []}, 400, "prompt"),
    ({"prompt": "\u263a\u2603"}, 400, "prompt"),
    ({"prompt": "a" * 20_001}, 400, "prompt"),
    ({"max_tokens": -1}, 400, "max_tokens"),
    ({"max_tokens": 10**9}, 400, "max_tokens"),
    ({"max_tokens": "10"}, 400, "max_tokens"),
    ({"max_tokens": True}, 400, "max_tokens"),
    ({"max_tokens": 1.5}, 400, "max_tokens"),
    ({"temperature": -0.1}, 400, "temperature"),
    ({"temperature": "hot"}, 400, "temperature"),
    ({"top_p": 0}, 400, "top_p"),
    ({"top_p": 1.5}, 400, "top_p"),
    ({"top_k": -2}, 400, "top_k"),
    ({"n": 0}, 400, "n"),
    ({"n": 1000}, 400, "n"),
    ({"stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    ({"stop": [""]}, 400, "stop"),
    ({"stop": 7}, 400, "stop"),
    ({"seed": -1}, 400, "seed"),
    ({"seed": "x"}, 400, "seed"),
    ({"echo": "yes"}, 400, "echo"),
    ({"stream": 1}, 400, "stream"),
    ({"logprobs": 50}, 400, "logprobs"),
    ({"logprobs": -1}, 400, "logprobs"),
    (b"{" + b'"prompt": "' + b"a" * 1_100_000 + b'"}', 413, None),
]


@pytest.mark.parametrize("body, status, param", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_requests_get_an_openai_error_naming_the_field(server, body, status, param):
    if isinstance(body, dict):
        body = json.dumps(dict({"model": "notes-lstm", "prompt": "a", "max_tokens": 4}, **body)).encode()
    r = httpx.post(server.url + "/v1/completions", content=body, headers={"Content-Type": "application/json"},
                   timeout=60)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == param and error["message"]
    assert "Traceback" not in r.text


def test_the_server_never_answered_500(server):
    assert " 500 " not in server.log and "Traceback" not in server.log


def test_other_routes_and_methods_are_openai_errors(server):
    for method, path, status in (("GET", "/v1/nothing", 404), ("GET", "/v1/completions", 405),
                                 ("DELETE", "/v1/models", 405)):
        r = httpx.request(method, server.url + path)
        assert r.status_code == status and "error" in r.json()


# ---- the page -----------------------------------------------------------------------------------------


def test_the_page_in_headless_chromium(server):
    browser = pytest.importorskip("browser")
    if browser.CHROMIUM is None or browser._playwright() is None:
        pytest.skip("needs Chromium (apt-get install chromium) and Playwright (pip install playwright)")
    with browser.chromium() as new_page:
        page = new_page(server.url + "/")
        page.wait_for_function("document.getElementById('model').options.length == 2")
        assert "notes-lstm: lstm, 2 x 24 units" in page.inner_text("#facts")
        page.fill("#prompt", "The ")
        page.fill("#length", "120")
        page.eval_on_selector("#temperature", "e => { e.value = '0'; e.dispatchEvent(new Event('input')); }")
        page.click("#generate")
        page.wait_for_function("document.getElementById('status').textContent.includes('chars/s')")
        greedy = post(server, {"model": "notes-lstm", "prompt": "The ", "max_tokens": 120, "temperature": 0}).json()
        assert page.inner_text("#output") == "The " + greedy["choices"][0]["text"]
        page.hover("#output span:nth-child(6)")
        page.wait_for_selector("#top5", state="visible")
        assert len(page.query_selector_all("#top5 .row")) == 5
        page.fill("#length", "100000")
        page.select_option("#model", "notes-gru")
        page.click("#generate")
        page.wait_for_function("document.getElementById('output').textContent.length > 60")
        page.click("#stop")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('stopped')")
        assert page.errors == []
