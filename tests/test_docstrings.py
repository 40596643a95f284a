"""Every example in the public API's docstrings runs, as written (doctest), in a folder of its own
that has the repository's configs/ and data/ and a trained hello run (`run`, `model`, `cfg`)."""

import doctest
import inspect
import math
import os
from pathlib import Path

import pytest

import charnn

ROOT = Path(__file__).parent.parent


def public_objects():
    """Each public name, and the public methods and properties of the public classes."""
    seen = []
    for name in sorted(set(charnn.__all__) - {"__version__"}):
        value = getattr(charnn, name)
        seen.append((name, value))
        if inspect.isclass(value):
            for attr, member in vars(value).items():
                if not attr.startswith("_") and (inspect.isfunction(member) or isinstance(member, property)):
                    seen.append((f"{name}.{attr}", member.fget if isinstance(member, property) else member))
    return seen


EXAMPLES = [(name, obj) for name, obj in public_objects() if obj.__doc__ and ">>>" in obj.__doc__]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A user's folder: the repository's configs and data beside it, and runs/hello trained."""
    path = tmp_path_factory.mktemp("doc")
    for name in ("configs", "data"):
        (path / name).symlink_to(ROOT / name)
    cwd = os.getcwd()
    os.chdir(path)
    cfg = charnn.load_config("configs/hello.yaml", {"train.steps": 300})
    run = charnn.train(cfg, progress=False)
    yield {"charnn": charnn, "math": math, "cfg": cfg, "run": run, "model": run.model()}
    os.chdir(cwd)


def test_the_examples_cover_the_api():
    names = {name for name, _ in EXAMPLES}
    assert {"load_config", "train", "load", "Model.sample", "Model.stream", "Model.score", "Model.states",
            "Model.inspect_gradients", "report", "describe", "Run", "Score", "GradientReport", "export"} <= names


@pytest.mark.parametrize("name, obj", EXAMPLES, ids=[name for name, _ in EXAMPLES])
def test_docstring_examples_run(folder, name, obj):
    if name.endswith(("sweep", "report")) and name != "Report":
        pytest.importorskip("optuna" if "sweep" in name else "matplotlib")
    if "report" in name.lower():
        pytest.importorskip("matplotlib")
    parser = doctest.DocTestParser()
    test = parser.get_doctest(obj.__doc__, dict(folder), name, None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0, f"{name}: {runner.failures} example(s) failed (run with -s to see doctest's report)"
