"""The documentation site builds without a warning, and every example in it runs: each ```python
block (a page's blocks in order, sharing one namespace), each ```sh block (its commands), in a
folder of their own that holds the repository's configs/ and data/ (issue #25), and each ```js
block in a web export in headless Chromium (issue #26)."""

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks(language: str) -> list[tuple[str, str]]:
    """(page, code) of every fenced block of `language` in the docs and the README."""
    pages = sorted(DOCS.glob("*.md")) + [ROOT / "README.md"]
    return [(page.name, code) for page in pages for lang, code in FENCE.findall(page.read_text(encoding="utf-8"))
            if lang == language]


@pytest.fixture
def folder(tmp_path, monkeypatch):
    for name in ("configs", "data"):
        (tmp_path / name).symlink_to(ROOT / name)
    (tmp_path / "story.txt").write_text("Once upon a time there was a cat who sat on a mat.\n" * 60, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_there_are_examples_to_run():
    assert len(blocks("python")) >= 1 and len(blocks("sh")) >= 3


# what a block may import that CI may lack: the block is skipped, saying so, where it is missing
OPTIONAL = {"torch": "pip install torch", "onnxruntime": "pip install onnxruntime", "onnx": "pip install onnx",
            "fastapi": "pip install fastapi", "openai": "pip install openai"}


def missing_modules(code: str) -> list[str]:
    imported = set(re.findall(r"^\s*(?:import|from)\s+(\w+)", code, re.M))
    return sorted(m for m in imported & set(OPTIONAL) if importlib.util.find_spec(m) is None)


@pytest.mark.parametrize("page", sorted({page for page, _ in blocks("python")}))
def test_python_examples_run(folder, page):
    namespace = {"__name__": "__docs__"}
    skipped = []
    for name, code in blocks("python"):
        if name == page:
            if missing_modules(code):
                skipped += missing_modules(code)
                continue
            exec(compile(code, f"{page} (a python block)", "exec"), namespace)  # noqa: S102  our own docs
    if skipped:
        pytest.skip(f"{page}: the blocks that import {', '.join(skipped)} did not run; "
                    + "; ".join(OPTIONAL[m] for m in skipped))


@pytest.mark.parametrize("page, code", blocks("js"), ids=[p for p, _ in blocks("js")])
def test_javascript_examples_run_in_an_exported_page(folder, page, code):
    """Each line of a ```js block is evaluated in a web export of configs/hello.yaml in headless
    Chromium; a comment that is a quoted string is the value the line must give."""
    browser = pytest.importorskip("browser")
    if browser.CHROMIUM is None or browser._playwright() is None:
        pytest.skip("needs Chromium (apt-get install chromium) and Playwright (pip install playwright)")
    import charnn

    run = charnn.train(charnn.load_config("configs/hello.yaml"), force=True, progress=False)
    path = charnn.export(run.model(), folder / "hello.html", format="web").path
    with browser.chromium() as new_page:
        tab = new_page(path.as_uri())
        tab.wait_for_function("window.charnn !== undefined")
        for line in filter(None, (line.strip() for line in code.splitlines())):
            expression, _, comment = line.partition("//")
            value = tab.evaluate(expression.strip())
            expected = comment.strip()
            if expected.startswith('"'):
                assert value == json.loads(expected), line
            assert value is not None, line
        assert tab.errors == []


@pytest.mark.parametrize("index, page, code", [(i, p, c) for i, (p, c) in enumerate(blocks("sh"))],
                         ids=[f"{p}-{i}" for i, (p, _) in enumerate(blocks("sh"))])
def test_shell_examples_run(folder, index, page, code):
    charnn = [sys.executable, "-m", "charnn"]
    env = dict(os.environ)
    for line in code.splitlines():
        command = line.split("#", 1)[0].strip()
        if not command:
            continue
        argv = shlex.split(command)
        assert argv[0] == "charnn", f"{page}: only charnn commands run here: {command}"
        if argv[1:3] == ["train", "--data"] and "--minutes" not in argv:
            argv += ["--minutes", "0.05"]  # the example's text trains in seconds (its size rule caps the steps)
        if argv[1] == "report":
            pytest.importorskip("matplotlib")
        proc = subprocess.run(charnn + argv[1:], capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, f"{page}: {command}\n{proc.stderr}"


def test_the_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra builds the site: pip install -e '.[docs]'")
    pytest.importorskip("mkdocstrings", reason="pip install -e '.[docs]'")
    pytest.importorskip("mkdocs_jupyter", reason="pip install -e '.[docs]'")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "cli" / "index.html").read_text().count("charnn train") >= 2
    assert "load_config" in (tmp_path / "site" / "api" / "index.html").read_text()


def test_the_notebook_runs_top_to_bottom(tmp_path):
    """notebooks/tour.ipynb, committed without outputs, executed by a real kernel as a reader would."""
    nbformat = pytest.importorskip("nbformat", reason="the notebook extra runs it: pip install -e '.[notebook]'")
    nbclient = pytest.importorskip("nbclient", reason="pip install -e '.[notebook]'")
    pytest.importorskip("ipykernel", reason="pip install -e '.[notebook]'")
    pytest.importorskip("matplotlib")
    notebook = nbformat.read(ROOT / "notebooks" / "tour.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")  # committed clean
    for name in ("configs", "data"):
        (tmp_path / name).symlink_to(ROOT / name)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first cell that fails
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("ellohello" in str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    shutil.rmtree(tmp_path / "runs", ignore_errors=True)
