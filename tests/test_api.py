"""The Python API as a user uses it: nothing but `import charnn` (issue #25)."""

import html.parser
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import charnn

ROOT = Path(__file__).parent.parent
HELLO = ROOT / "configs" / "hello.yaml"


@pytest.fixture(scope="module")
def hello(tmp_path_factory):
    """The seed example trained through the API, in a folder of its own."""
    folder = tmp_path_factory.mktemp("api")
    cfg = charnn.load_config(HELLO, {"train.steps": 300, "run.dir": str(folder / "runs")})
    return charnn.train(cfg, progress=False)


def test_every_public_name_is_documented_with_an_example_and_typed():
    import inspect

    for name in set(charnn.__all__) - {"__version__"}:
        value = getattr(charnn, name)
        assert value.__doc__ and "Examples:" in value.__doc__, name
        if inspect.isfunction(value):
            signature = inspect.signature(value)
            assert signature.return_annotation is not inspect.Signature.empty, name
            assert all(p.annotation is not inspect.Parameter.empty for p in signature.parameters.values()), name


def test_import_charnn_loads_nothing_heavy():
    """`import charnn` stays cheap: the API's modules (and numpy) load on first use."""
    code = "import sys, charnn; print(sorted(m for m in ('numpy', 'rich', 'typer', 'charnn.api') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_train_sample_score_inspect_report_and_resume(hello, tmp_path, capsys):
    run = hello
    assert isinstance(run, charnn.Run) and run.stopped == "steps" and run.steps == 300
    assert run.dir.name == "hello" and run.metrics and run.metrics[-1]["step"] == 300
    model = run.model()
    assert isinstance(model, charnn.Model) and model.cell == "rnn" and model.num_parameters == 404
    assert model.config.train.steps == 300 and model.vocab.chars == ("e", "h", "l", "o")
    assert model.sample(seed="h", length=4, greedy=True) == "ello"
    assert "".join(model.stream(seed="h", length=4, greedy=True)) == "ello"
    # score equals `charnn eval --json` on the same text and checkpoint
    (tmp_path / "t.txt").write_text("hellohello")
    from charnn.cli import main

    assert main(["eval", str(tmp_path / "t.txt"), "-c", str(run.checkpoint), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    score = model.score("hellohello")
    assert isinstance(score, charnn.Score) and score.chars == cli["chars"] == 9
    for key in ("nats_per_char", "bits_per_char", "perplexity"):
        assert getattr(score, key) == pytest.approx(cli[key], rel=1e-12, abs=0)
    states = model.states("hello")
    assert len(states) == 1 and states[0].units.shape == (5, 16) and states[0].gates == {}
    report = model.inspect_gradients(text="hellohello", steps=6)
    assert isinstance(report, charnn.GradientReport) and report.verdicts[0] in (
        "exploding", "vanishing", "short memory", "healthy")
    assert report.to_dict()["steps"] == 6


def test_resume_through_the_api(tmp_path):
    first = charnn.train(charnn.load_config(HELLO, {"train.steps": 50, "run.dir": str(tmp_path)}), progress=False)
    again = charnn.train(charnn.load_config(first.dir, {"train.steps": 80}), first.dir, resume=True, progress=False)
    assert again.steps == 80 and again.dir == first.dir
    finished = charnn.train(first.dir, resume=True, progress=False)  # a run directory: its own config
    assert finished.steps == 80 and "already finished" in finished.note and "train.steps (e.g. 160)" in finished.note


def test_report_and_describe(hello, tmp_path):
    pytest.importorskip("matplotlib")
    page = charnn.report([hello.dir], out=tmp_path / "page.html", text_chars=10)
    assert isinstance(page, charnn.Report) and page.path == tmp_path / "page.html" and page.path.exists()
    assert page.to_dict()["runs"][0]["steps"] == 300
    info = charnn.describe(hello.checkpoint)
    assert info["cell"] == "rnn" and info["parameters"] == 404


class _Balance(html.parser.HTMLParser):
    """Every opened element closed, in order (void elements aside)."""

    VOID = {"br", "hr", "img", "input", "meta", "link", "col", "area", "base", "source", "wbr", "path", "use"}

    def __init__(self):
        super().__init__()
        self.stack, self.errors = [], []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        pass

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def well_formed(fragment: str) -> bool:
    checker = _Balance()
    checker.feed(fragment)
    checker.close()
    return not checker.errors and not checker.stack


def test_every_result_shows_itself_as_well_formed_html(hello, tmp_path):
    pytest.importorskip("matplotlib")
    model = hello.model()
    shown = [hello, model, model.score("hello"), model.inspect_gradients(text="hellohello", steps=6),
             charnn.report([hello.dir], out=tmp_path / "r.html", text_chars=10)]
    for thing in shown:
        fragment = thing._repr_html_()
        assert well_formed(fragment), type(thing).__name__
    assert "<svg" in shown[3]._repr_html_() and "<iframe" in shown[4]._repr_html_()


@pytest.mark.parametrize("call, parameter", [
    (lambda m: m.sample(temperature=0), "temperature must be > 0"),
    (lambda m: m.sample(top_k=-1), "top_k must be >= 0"),
    (lambda m: m.sample(length=-1), "length must be >= 0"),
    (lambda m: m.sample(seed="The"), "outside the model's vocabulary: 'T'"),
    (lambda m: m.score("hello", streams=0), "streams must be >= 1"),
    (lambda m: m.score("hello", segment_len=9), "add dynamic=True"),
    (lambda m: m.inspect_gradients(text="hellohello", steps=1), "steps must be >= 2"),
    (lambda m: m.inspect_gradients(text="hellohello", windows=0), "windows must be >= 1"),
])
def test_bad_arguments_name_the_parameter(hello, call, parameter):
    with pytest.raises(charnn.CharnnError, match=parameter) as e:
        call(hello.model())
    assert "\n" not in str(e.value) and "--" not in str(e.value)  # Python's names, not the command line's


def test_bad_configs_name_the_key(tmp_path):
    with pytest.raises(charnn.CharnnError, match=r"overrides\['train.learning_rate'\]: unknown key \(did you mean 'lr'\?\)"):
        charnn.load_config(HELLO, {"train.learning_rate": 0.1})
    with pytest.raises(charnn.CharnnError, match="overrides\\['train.lr'\\]: must be > 0"):
        charnn.load_config(HELLO, {"train.lr": -1})
    with pytest.raises(charnn.CharnnError, match="model.hidden_size: expected an integer"):
        charnn.load_config({"data": {"text": "hello"}, "model": {"hidden_size": "big"}})
    with pytest.raises(charnn.CharnnError, match="not found"):
        charnn.load_config(tmp_path / "missing.yaml")
    with pytest.raises(charnn.CharnnError, match="minutes must be > 0"):
        charnn.load_config(HELLO, minutes=0)


def test_missing_and_hostile_checkpoints_are_charnn_errors(tmp_path):
    with pytest.raises(charnn.CharnnError, match="not found"):
        charnn.load(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not a zip at all")
    with pytest.raises(charnn.CharnnError, match="truncated or corrupted"):
        charnn.load(tmp_path / "junk.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(charnn.CharnnError):
        charnn.describe(tmp_path / "text.npz")


def test_train_on_your_own_text_in_one_call(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "story.txt").write_text("once upon a time there was a cat.\n" * 40)
    cfg = charnn.load_config(data="story.txt", overrides={"model.hidden_size": 8, "model.num_layers": 1,
                                                         "train.steps": 20, "train.max_minutes": 0})
    run = charnn.train(cfg, progress=False)
    assert run.dir == Path("runs") / "story" and run.steps == 20


def test_interrupting_training_saves_and_returns_the_run(tmp_path):
    """Ctrl-C (Jupyter's "interrupt kernel" sends the same SIGINT) during charnn.train."""

    class InterruptAtStep(charnn.api.runs.Callback):
        def on_step(self, metrics):
            if metrics["step"] == 7:
                os.kill(os.getpid(), signal.SIGINT)

    cfg = charnn.load_config(HELLO, {"train.steps": 300, "run.dir": str(tmp_path), "run.log_every": 1,
                                     "run.checkpoint_every": 1000})
    run = charnn.train(cfg, progress=InterruptAtStep())
    assert run.stopped == "interrupted" and run.steps == 7
    assert charnn.describe(run.dir / "latest.npz")["step"] == 7
    resumed = charnn.train(run.dir, resume=True, progress=False)
    assert resumed.stopped == "steps" and resumed.steps == 300


def test_a_diverging_run_raises_and_says_how_far_it_got(tmp_path):
    cfg = charnn.load_config(HELLO, {"train.lr": 1e6, "train.grad_clip": 0, "train.steps": 300,
                                     "run.dir": str(tmp_path)})
    with pytest.raises(charnn.CharnnError, match="lower train.lr") as e:
        charnn.train(cfg, progress=False)
    assert e.value.run.stopped == "diverged" and e.value.run.steps < 300
