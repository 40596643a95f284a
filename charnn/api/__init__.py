"""charnn's Python API: the names `import charnn` offers (charnn/__init__.py imports them lazily).

Configs (load_config), training (train -> Run), models (load, init_model -> Model: sample, stream,
score -> Score, states, inspect_gradients -> GradientReport), pages (report -> Report) and
checkpoints (describe), exports (export -> Export), data (prepare_data, synth_text), the experiments (memory_span ->
MemorySpan, bias_variance -> BiasVariance) and search (sweep). The command line stands on exactly
these calls.
"""

import importlib

# name -> the module that defines it: imported on first use, so `from charnn import api` is cheap
_HOMES = {
    "load_config": "configs", "prepare_data": "data", "sweep": "data", "synth_text": "data",
    "BiasVariance": "experiments", "MemorySpan": "experiments", "bias_variance": "experiments",
    "memory_span": "experiments", "GradientReport": "models", "LayerStates": "models", "Model": "models",
    "Score": "models", "init_model": "models", "load": "models", "Report": "reports", "describe": "reports",
    "report": "reports", "Run": "runs", "train": "runs", "Export": "exports", "export": "exports",
    "Batch": "generation", "Generation": "generation", "Piece": "generation",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        value = getattr(importlib.import_module(f"charnn.api.{_HOMES[name]}"), name)
        globals()[name] = value
        return value
    if name in ("configs", "data", "exports", "generation", "experiments", "models", "reports", "runs", "plots", "progress", "html",
                "defaults"):
        return importlib.import_module(f"charnn.api.{name}")
    raise AttributeError(f"module 'charnn.api' has no attribute {name!r}")
