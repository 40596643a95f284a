"""The memory-span experiment's plumbing: stages, seeds, the summary, the CSV and the picture."""

import pytest

from charnn.analysis import memory_span
from charnn.errors import CharnnError


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


def test_recurrent_cells_build_on_the_previous_stage_the_mlp_starts_afresh(tmp_path, monkeypatch):
    seen = []

    def fake_train(cfg, run_dir, force):
        seen.append((cfg.model.cell, cfg.run.init_from, cfg.train.optimizer, cfg.train.weight_decay))
        return type("Result", (), {"elapsed_s": 0.0, "step": 1})()

    monkeypatch.setattr(memory_span, "train", fake_train)
    score = {"loss": 0.0, "best": 0.0, "nomem": 0.0, "fraction": 0.0, "horizon": None}
    monkeypatch.setattr(memory_span, "_score", lambda path, cfg, text: score)
    memory_span.run(["gru", "mlp"], ((2, 1), (3, 1)), [0], hidden=8, text_chars=2_000, context=4)
    (gru2, gru3), (mlp2, mlp3) = seen[:2], seen[2:]
    assert gru2[1] is None and gru3[1].endswith("gru-s0-K2/latest.npz")  # the curriculum
    assert gru3[2:] == ("adam", 0.0)
    assert mlp2[1] is None and mlp3[1] is None  # no recurrence to build on: each K from scratch
    assert mlp3[2:] == ("adamw", 0.1)


def test_the_figure_survives_seeds_that_agree(tmp_path):
    # three equal fractions average to a hair below their value in floating point
    # ((0.99 + 0.99 + 0.99) / 3 < 0.99), which made a negative error bar that matplotlib refuses
    rows = [{"cell": "lstm", "K": k, "seed": s, "fraction": f, "horizon": 9}
            for k, f in ((5, 0.99), (40, 0.9)) for s in (0, 1, 2)]
    assert memory_span.summary(rows)[0]["mean"] < 0.99  # the case itself
    memory_span.plot(rows, tmp_path / "m.png")
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"
