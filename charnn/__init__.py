"""charnn: character-level recurrent language models in NumPy, trained by truncated backpropagation
through time; sample from them, score texts, and watch their gradients vanish or explode.

    import charnn
    cfg = charnn.load_config("configs/hello.yaml", {"train.steps": 300})
    run = charnn.train(cfg)                     # -> charnn.Run
    model = run.model()                         # -> charnn.Model (best.npz)
    model.sample(seed="h", length=20, greedy=True)
    model.score("hello")                        # -> charnn.Score
    model.inspect_gradients()                   # -> charnn.GradientReport
    charnn.report([run.dir])                    # -> charnn.Report (an HTML page)
    charnn.export(model, "m.html", format="web")  # -> charnn.Export (safetensors, onnx, web, hf)

Everything in `__all__` is the public API; anything else may change. Every error the library
raises derives from charnn.CharnnError and says in one line what is wrong and how to fix it.
"""

from charnn.errors import CharnnError

__version__ = "0.1.0"
__all__ = ["Batch", "BiasVariance", "CharnnError", "Config", "Export", "Generation", "GradientReport", "LayerStates", "MemorySpan", "Model", "Piece", "Report",
           "Run", "Score", "bias_variance", "describe", "export", "init_model", "load", "load_config", "memory_span",
           "prepare_data", "report", "sweep", "synth_text", "train", "__version__"]

_LAZY = {"Config": "charnn.config"}  # the rest come from charnn.api


def __getattr__(name: str):
    """The API's names, imported on first use: `import charnn` stays quick (numpy loads only when needed)."""
    if name in __all__ and name not in globals():
        import importlib

        value = getattr(importlib.import_module(_LAZY.get(name, "charnn.api")), name)  # (charnn.api is lazy too)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'charnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
