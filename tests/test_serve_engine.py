"""The serving engine's parts without HTTP: stop sequences cut and held back across steps, and
Model.generation / Model.batch (what the engine steps) against Model.sample."""

from pathlib import Path

import pytest

import charnn
from charnn.api.generation import Piece
from charnn.serve.engine import Choice

TEXT = Path(__file__).resolve().parents[1].joinpath("data", "rnn_notes.txt").read_text(encoding="utf-8")


def feed(choice, text, prompt=""):
    """Pieces of `prompt` (echoed) and `text` (made) one character at a time; the deltas' texts."""
    sent = []
    for ch in prompt:
        choice.add(Piece(ch, None, prompt=True))
    for ch in text:
        choice.add(Piece(ch, -1.0))
        delta = choice.delta()
        if delta is not None:
            sent.append(delta.text)
        if choice.finish_reason:
            break
    choice.finish()
    last = choice.delta()
    if last is not None and last.text:
        sent.append(last.text)
    return sent


@pytest.mark.parametrize("stops, text, expected, reason", [
    ([], "hello world", "hello world", "length"),
    (["wor"], "hello world", "hello ", "stop"),
    (["lo w", "xyz"], "hello world", "hel", "stop"),
    (["o"], "hello", "hell", "stop"),
    (["ld!"], "hello world", "hello world", "length"),  # a held "ld" is sent once the text ends
    (["ab"], "aab", "a", "stop"),
    (["hel"], "hello", "", "stop"),
])
def test_stop_sequences_are_cut_and_never_half_sent(stops, text, expected, reason):
    choice = Choice(0, None, stops)
    sent = feed(choice, text)
    assert "".join(sent) == expected and choice.finish_reason == reason
    for s in stops:  # no delta ever carried the beginning of a stop sequence that then completed
        assert s not in "".join(sent)


def test_an_echoed_prompt_is_sent_at_once_and_never_matched_against_stops():
    choice = Choice(0, None, ["lo"])
    sent = feed(choice, "xlo", prompt="hello ")
    assert sent[0].startswith("hello ") and "".join(sent) == "hello x" and choice.finish_reason == "stop"


def test_the_offsets_count_what_was_sent():
    choice = Choice(0, None, [])
    offsets = []
    for ch in "abc":
        choice.add(Piece(ch, -1.0))
        offsets.append(choice.delta().offset)
    assert offsets == [0, 1, 2]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    run = charnn.train({"data": {"text": TEXT}, "model": {"cell": "gru", "hidden_size": 20},
                        "train": {"steps": 60, "batch_size": 8, "seq_len": 16},
                        "run": {"dir": str(tmp_path_factory.mktemp("e") / "runs"), "name": "e", "eval_every": 0}},
                       progress=False)
    return run.model()


def test_a_generation_is_sample_piece_by_piece(model):
    for kwargs in ({"rng_seed": 4}, {"greedy": True}, {"rng_seed": 9, "top_k": 3, "top_p": 0.8, "temperature": 0.7}):
        g = model.generation("The ", length=80, **kwargs)
        assert "".join(p.text for p in g.run()) == model.sample("The ", length=80, **kwargs)


def test_a_batch_steps_many_and_seeded_ones_are_exact(model):
    batch = model.batch()
    seeded = [model.generation("It ", length=50 + i, rng_seed=i) for i in range(5)]
    free = [model.generation("x" * (i + 1), length=30) for i in range(5)]
    texts = {id(g): "" for g in seeded + free}
    for g in seeded + free:
        batch.add(g)
    steps = 0
    while batch.size:
        for g, piece in batch.step():
            if piece is not None:
                texts[id(g)] += piece.text
        steps += 1
        if steps == 10:  # one joins late, one leaves early
            late = model.generation("It ", length=20, rng_seed=77)
            texts[id(late)] = ""
            batch.add(late)
            batch.remove(free[0])
    assert [texts[id(g)] for g in seeded] == [model.sample("It ", length=50 + i, rng_seed=i) for i in range(5)]
    assert texts[id(late)] == model.sample("It ", length=20, rng_seed=77)
    assert all(len(texts[id(g)]) == 30 for g in free[1:]) and len(texts[id(free[0])]) < 30


def test_a_prompt_outside_the_vocabulary_is_refused(model):
    with pytest.raises(charnn.CharnnError, match="outside the model's vocabulary"):
        model.generation("\u263a")


def test_more_texts_than_the_server_makes_at_once_is_a_400_and_a_failing_model_a_500(model, monkeypatch):
    pytest.importorskip("fastapi", reason="pip install -e '.[serve]'")
    from fastapi.testclient import TestClient

    from charnn.api.generation import Batch
    from charnn.serve.app import create_app

    lines = []
    with TestClient(create_app({"m": model}, max_streams=4, log=lines.append)) as client:
        r = client.post("/v1/completions", json={"prompt": ["a", "b", "c"], "n": 2})
        assert r.status_code == 400 and r.json()["error"]["param"] == "n"

        def broken(self):
            raise FloatingPointError("boom")

        monkeypatch.setattr(Batch, "step", broken)
        r = client.post("/v1/completions", json={"prompt": "a", "max_tokens": 5})
        assert r.status_code == 500 and r.json()["error"]["type"] == "server_error"
        assert "Traceback" not in r.text
        monkeypatch.undo()
        assert client.post("/v1/completions", json={"prompt": "a", "max_tokens": 5}).status_code == 200
    assert any(" 500 " in line for line in lines) and not any("Traceback" in line for line in lines)
