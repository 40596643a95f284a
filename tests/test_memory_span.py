"""The memory-span experiment's plumbing: stages, seeds, the summary, the CSV and the picture."""

import pytest

from charnn.analysis import memory_span
from charnn.errors import CharnnError
from charnn.settings import load_config


def test_stages_parse_and_bad_ones_are_one_line_errors():
    assert memory_span.parse_stages("5:40, 10:60.5") == ((5, 40.0), (10, 60.5))
    for bad in ("5", "5:x", "1:10", "5:0"):
        with pytest.raises(CharnnError, match="--stages"):
            memory_span.parse_stages(bad)


def test_a_tiny_curriculum_over_two_seeds(tmp_path):
    rows = memory_span.run(["gru"], ((2, 0.2), (3, 0.2)), [0, 1], ["model.gate_init=chrono"], hidden=8,
                           text_chars=20_000)
    assert [(r["K"], r["seed"]) for r in rows] == [(2, 0), (3, 0), (2, 1), (3, 1)]
    assert all(r["steps"] > 0 and r["params"] > 0 and -5 < r["fraction"] <= 1.01 for r in rows)
    memory_span.write_csv(rows, tmp_path / "m.csv")
    again = memory_span.read_csv(tmp_path / "m.csv")
    summary = memory_span.summary(again)
    assert [(s["K"], s["seeds"]) for s in summary] == [(2, 2), (3, 2)]
    for s in summary:
        fractions = [r["fraction"] for r in rows if r["K"] == s["K"]]
        assert s["mean"] == pytest.approx(sum(fractions) / 2) and s["min"] == min(fractions) and s["max"] == max(fractions)
    memory_span.plot(again, tmp_path / "m.png")
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"


def test_recurrent_cells_build_on_the_previous_stage_the_mlp_starts_afresh(tmp_path):
    """A real tiny run (trained, scored), its stage runs kept to read back how each stage began."""
    rows = memory_span.run(["gru", "mlp"], ((2, 0.2), (3, 0.2)), [0], hidden=8, text_chars=3_000, context=4,
                           runs_dir=tmp_path)
    assert [(r["cell"], r["K"]) for r in rows] == [("gru", 2), ("gru", 3), ("mlp", 2), ("mlp", 3)]
    assert all(r["steps"] > 0 for r in rows) and {r["horizon"] for r in rows if r["cell"] == "mlp"} == {"context 4"}
    seen = {r: load_config(tmp_path / r / "config.yaml") for r in ("gru-s0-K2", "gru-s0-K3", "mlp-s0-K2", "mlp-s0-K3")}
    gru2, gru3, mlp2, mlp3 = (seen[r] for r in ("gru-s0-K2", "gru-s0-K3", "mlp-s0-K2", "mlp-s0-K3"))
    assert gru2.run.init_from is None and gru3.run.init_from == str(tmp_path / "gru-s0-K2" / "latest.npz")
    assert (gru3.train.optimizer, gru3.train.weight_decay) == ("adam", 0.0)
    assert mlp2.run.init_from is None and mlp3.run.init_from is None  # no recurrence to build on: each K afresh
    assert (mlp3.train.optimizer, mlp3.train.weight_decay) == ("adamw", 0.1)


def test_the_figure_survives_seeds_that_agree(tmp_path):
    # three equal fractions average to a hair below their value in floating point
    # ((0.99 + 0.99 + 0.99) / 3 < 0.99), which made a negative error bar that matplotlib refuses
    rows = [{"cell": "lstm", "K": k, "seed": s, "fraction": f, "horizon": 9}
            for k, f in ((5, 0.99), (40, 0.9)) for s in (0, 1, 2)]
    assert memory_span.summary(rows)[0]["mean"] < 0.99  # the case itself
    memory_span.plot(rows, tmp_path / "m.png")
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"
