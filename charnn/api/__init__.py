"""charnn's Python API: the names `import charnn` offers (charnn/__init__.py imports them lazily).

Configs (load_config), training (train -> Run), models (load, init_model -> Model: sample, stream,
score -> Score, states, inspect_gradients -> GradientReport), pages (report -> Report) and
checkpoints (describe), data (prepare_data, synth_text), the experiments (memory_span ->
MemorySpan, bias_variance -> BiasVariance) and search (sweep). The command line stands on exactly
these calls.
"""

from charnn.api import plots  # noqa: F401  (charnn.api.plots: figure checks for the command line)
from charnn.api.configs import load_config
from charnn.api.data import prepare_data, sweep, synth_text
from charnn.api.experiments import BiasVariance, MemorySpan, bias_variance, memory_span
from charnn.api.models import GradientReport, LayerStates, Model, Score, init_model, load
from charnn.api.reports import Report, describe, report
from charnn.api.runs import Run, train

__all__ = ["BiasVariance", "GradientReport", "LayerStates", "MemorySpan", "Model", "Report", "Run", "Score",
           "bias_variance", "describe", "init_model", "load", "load_config", "memory_span", "prepare_data", "report",
           "sweep", "synth_text", "train"]
