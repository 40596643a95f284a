"""How gradients flow back through time: per-lag norms, Jacobians, contributions and a verdict.

For a window of T+1 characters c_0..c_T run from a zero state, l_T is the cross-entropy of
predicting c_T at the last step, and s_t (t = 1..T) a layer's state. For each lag
k = 0..T-1 and each layer:

    dL_ds[k]        = || dl_T / ds_{T-k} ||                       (the gradient k steps back)
    jacobian[k]     = || ds_T / ds_{T-k} ||_2, a product of steps  J_t = diag(1 - s_t^2) W_hh^T
    contribution[k] = || s_{T-k-1} || * || delta_{T-k} ||,        delta = dl_T/ds * (1 - s^2)
                      the Frobenius norm of the step-(T-k) term of dl_T/dW_hh

Each is averaged over windows. All maths in float64 on a copy of the parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from charnn.nn import cells
from charnn.nn import model
from charnn.errors import CharnnError, ParameterError
from charnn.nn.workspace import FRESH

HORIZON_FRACTION = 1e-3  # the horizon is where dL/ds falls below this fraction of its k = 0 value
VANISHING_HORIZON = 10  # steps; a memory shorter than this is "vanishing"
# ... and one shorter than this is at best "short memory": decaying by 0.75 per step, the
# gradient from 30 steps back is a million times smaller than the one from the last step
SHORT_HORIZON = 30
DEFAULT_STEPS = 50
DEFAULT_WINDOWS = 8


def window_source(train: np.ndarray, val: np.ndarray, steps: int | None) -> tuple[np.ndarray, str]:
    """(ids, name) that random windows are drawn from: the validation text, or the training text
    when the validation text is too short for a window."""
    if len(val) >= max(steps or 0, 2) + 1:
        return val, "the validation text"
    return train, "the training text"


@dataclass
class LayerReport:
    layer: int
    lag: list[int]
    dL_ds: list[float]
    jacobian: list[float]
    contribution: list[float]
    horizon: int | None  # None: the gradient never fell below HORIZON_FRACTION within T
    factor: float  # fitted per-step growth (> 1) or decay (< 1) of dL/ds
    verdict: str  # exploding | vanishing | short memory | healthy
    advice: str
    spectral_radius: float | None  # of W_hh; None for gated cells, whose W_h is not square
    max_singular_value: float  # of the recurrent matrix (W_hh, or W_h with all gate blocks)
    cell: str = "rnn"
    dL_dc: list[float] | None = None  # LSTM: ||dl_T / dc_{T-k}||, the cell-state path of the gradient
    cell_path: list[float] | None = None  # LSTM: ||prod of diag(f)||, the direct carousel through c


@dataclass
class GradientReport:
    layers: list[LayerReport]
    params: dict[str, dict[str, float]]
    clip_fraction: float | None = None
    steps: int = 0
    windows: int = 0
    check: dict[str, float] | None = field(default=None)
    short_text: int | None = None  # characters of a text too short for the default T (then T is fewer)
    measured_on: str = ""  # what text the windows came from, said beside every verdict

    @property
    def note(self) -> str | None:
        """How the analysis was adapted to the input: a text shorter than the default T."""
        if self.short_text is None:
            return None
        return f"the text has {self.short_text} characters: following the gradient back steps={self.steps}"

    def said(self) -> str:
        """'measured on 8 windows of T = 50 steps of the validation text (rng seed 0)'."""
        return f"measured on {self.measured_on}" if self.measured_on else ""

    def as_dict(self) -> dict:
        """Every number, with stable keys; non-finite values become None (valid JSON)."""

        def clean(x):
            if isinstance(x, float):
                return x if math.isfinite(x) else None
            if isinstance(x, list):
                return [clean(v) for v in x]
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            return x

        out = {
            "steps": self.steps,
            "windows": self.windows,
            "layers": [clean(vars(layer)) for layer in self.layers],
            "params": clean(self.params),
            "clip_fraction": clean(self.clip_fraction),
            "measured_on": self.measured_on,
        }
        if self.check is not None:
            out["check"] = clean(self.check)
        return out


# ---- the per-lag quantities ---------------------------------------------------------------


@dataclass
class _Flow:
    """How the last step's loss reaches one layer: per step t = 1..T (row t-1), all windows."""

    g: np.ndarray  # (T, N, H) total dl_T/dh_t
    da: np.ndarray  # (T, N, kH) gradient of the recurrent pre-activation; h_{t-1}^T da_t is dW_rec's term
    gc: np.ndarray | None  # (T, N, H) total dl_T/dc_t (LSTM only)


def _last_step_flows(params: model.Params, ids: np.ndarray, cache: model.ForwardCache) -> list[_Flow]:
    """The gradient of each window's last-step loss l_T through every layer and step.

    Each window's l_T depends only on its own row, so one batched pass serves all windows.
    """
    N, T = ids.shape[0], ids.shape[1] - 1
    c = cells.get(cache.cell)
    dlogits = cache.probs.reshape(T, N, -1)[-1].copy()
    dlogits[np.arange(N), ids[:, -1]] -= 1
    dS = np.zeros((T, N, params["head.W_hy"].shape[0]))
    dS[-1] = dlogits @ params["head.W_hy"].T
    flows: list[_Flow] = [None] * len(cache.outputs)
    for layer in range(len(cache.outputs) - 1, -1, -1):
        p = model.layer_params(params, layer)
        trace: dict = {}
        dxa = c.backward(dS, cache.cell_caches[layer], p, FRESH, trace=trace)[0]
        flows[layer] = _Flow(trace["dh"], trace["da"], trace.get("dc"))
        if layer > 0:
            dS = dxa @ p[c.input_weight].T
    return flows


def _top_singular_values(M: np.ndarray, U: np.ndarray, tol: float = 1e-6, max_iter: int = 200):
    """Largest singular value of each M[n] (N, H, H) by block subspace iteration from bases U (N, H, b).

    A block converges like (sigma_{b+1} / sigma_1)^2 per sweep, far faster than a single
    vector when the top singular values are close; consecutive lags change M little, so
    the previous bases are an excellent start. Falls back to an exact SVD if it stalls.
    """
    sigma = np.zeros(len(M))
    for _ in range(max_iter):
        # M^T U computed as (U^T M)^T: products with the contiguous M run on BLAS, the transposed view would not
        V, _ = np.linalg.qr(np.swapaxes(np.swapaxes(U, 1, 2) @ M, 1, 2))
        U, R = np.linalg.qr(M @ V)
        new_sigma = np.linalg.svd(R, compute_uv=False)[:, 0]
        if np.all(np.abs(new_sigma - sigma) <= tol * new_sigma):
            return new_sigma, U
        sigma = new_sigma
    return np.linalg.svd(M, compute_uv=False)[:, 0], U


def _jacobian_norms(c: cells.Cell, p: dict, cc) -> np.ndarray:
    """||ds_T/ds_{T-k}||_2 for k = 0..T-1 and each window: (T, N); s is the output h.

    The products of all windows advance together, each rescaled as it grows so that
    exploding or vanishing products stay representable; the scale is kept in log space.
    For the LSTM the product runs over the whole state [h | c] and the norm is that of its
    h -> h block (c_{T-k} held fixed).
    """
    T, N, H = cc.h.shape[0] - 1, cc.h.shape[1], cc.h.shape[2]
    out = np.zeros((T, N))
    out[0] = 1.0
    # float32 halves the memory traffic of the many passes over M; rescaled every step, M stays
    # near 1 in size, and its rounding (~1e-7 per step) is far below the 1e-4 the tests ask for
    f32 = np.float32
    p = {k: v.astype(f32) for k, v in p.items()}
    cc = cc._replace(**{k: v.astype(f32) for k, v in cc._asdict().items() if isinstance(v, np.ndarray)})
    M = np.repeat(np.eye(H, c.state_width(H), dtype=f32)[None], N, axis=0)
    log_scale = np.zeros(N)
    alive = np.ones(N, bool)  # a product that became exactly zero stays zero
    U = np.linalg.qr(np.random.default_rng(0).standard_normal((N, H, min(H, 16))).astype(f32))[0]
    for k in range(1, T):
        M = c.jacobian_product(M, T - k + 1, cc, p)  # ds_T/ds_{T-k} = J_T ... J_{T-k+1}
        scale = np.abs(M).max(axis=(1, 2))
        alive &= scale > 0
        scale[~alive] = 1.0
        M /= scale[:, None, None].astype(f32)
        log_scale += np.log(scale)
        sigma, U = _top_singular_values(np.ascontiguousarray(M[..., :H]), U)
        with np.errstate(over="ignore"):
            out[k] = np.where(alive, np.exp(log_scale) * sigma, 0.0)
    return out


def _cell_path(forget: np.ndarray) -> np.ndarray:
    """LSTM's direct cell-state path: ||prod diag(f)||_2 = max_j prod_t f_t[j] for k = 0..T-1, (T, N)."""
    T = forget.shape[0]
    log_f = np.log(np.maximum(forget[::-1], 1e-300))  # row k-1: step T-k+1
    out = np.ones((T, forget.shape[1]))
    out[1:] = np.exp(np.cumsum(log_f[: T - 1], axis=0).max(axis=2))
    return out


def _fit_factor(values: np.ndarray) -> float:
    """exp(slope) of a least-squares line through log(values) against lag (positive, finite ones)."""
    k = np.arange(len(values))
    ok = np.isfinite(values) & (values > 0)
    if ok.sum() < 2:
        return math.inf if not np.all(np.isfinite(values)) else 0.0
    slope = np.polyfit(k[ok], np.log(values[ok]), 1)[0]
    return float(math.exp(min(slope, 709.0)))


def _horizon(values: np.ndarray) -> int | None:
    """Largest k up to which dL/ds stays >= HORIZON_FRACTION of its k = 0 value; None: beyond T."""
    ref = values[0]
    if not np.isfinite(ref) or ref == 0:
        return None if not np.isfinite(ref) else 0
    below = np.flatnonzero(values < HORIZON_FRACTION * ref)
    return None if below.size == 0 else int(below[0]) - 1


def effective_horizon(horizon: int | None, factor: float) -> float:
    """The measured horizon, or beyond T, the lag at which the fitted decay reaches HORIZON_FRACTION."""
    if horizon is not None:
        return float(horizon)
    if 0 < factor < 1:
        return math.log(HORIZON_FRACTION) / math.log(factor)
    return math.inf


def verdict(horizon: int | None, factor: float, dL_ds: np.ndarray, cure: str | None = None) -> tuple[str, str]:
    """A verdict that follows the measured numbers, and advice that fits it; `cure` is what to try
    for a short memory (the cell's memory_advice; by default the Elman network's)."""
    if not np.all(np.isfinite(dL_ds)) or factor > 1.0:
        return "exploding", (
            "gradients grow going back in time: keep gradient clipping on (train.grad_clip), "
            "use a smaller init (e.g. model.init_scale 0.08) or model.init orthogonal"
        )
    reach = effective_horizon(horizon, factor)
    cure = cure or "try model.init orthogonal, a larger init scale, or a gated cell (model.cell lstm or gru)"
    if reach < VANISHING_HORIZON:
        return "vanishing", f"the loss barely sees more than {reach:.0f} steps back: {cure}"
    if reach < SHORT_HORIZON:
        return "short memory", (f"the gradient falls a thousand-fold within {reach:.0f} steps (x{factor:.2f} per step), "
                                f"so what lies further back barely moves the weights: {cure}")
    return "healthy", "gradients reach far back without growing: nothing to fix"


def analyse(params: model.Params, windows: np.ndarray, cell: str, clip_fraction: float | None = None) -> GradientReport:
    """The full report for id windows of shape (N, T+1), each run from a zero state."""
    windows = np.asarray(windows)
    if windows.ndim != 2 or windows.shape[1] < 3:
        raise CharnnError("gradient analysis needs windows of at least T+1 = 3 characters (T >= 2)")
    c = cells.get(cell)
    if not c.recurrent:
        raise CharnnError(f"the {cell} cell has no recurrent state to follow back through time: its memory is "
                          "exactly its model.context characters")
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    T = windows.shape[1] - 1
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        _, _, cache = model.forward(p64, windows[:, :-1], windows[:, 1:], model.zero_state(p64, len(windows), cell),
                                    cell=cell)
        flows = _last_step_flows(p64, windows, cache)
        layers = [_layer_report(c, layer, model.layer_params(p64, layer), cache.cell_caches[layer], flow, T)
                  for layer, flow in enumerate(flows)]
    return GradientReport(layers, parameter_health(p64, windows, cell), clip_fraction, steps=T, windows=len(windows))


def _layer_report(c: cells.Cell, layer: int, p: dict, cc, flow: _Flow, T: int) -> LayerReport:
    lag_order = slice(None, None, -1)  # lag k <-> state index t = T-k, so reverse the time axis
    mean = lambda a: np.linalg.norm(a[lag_order], axis=2).mean(axis=1)  # noqa: E731  (T,) over windows
    dL_ds = mean(flow.g)
    # the step producing s_{T-k} adds its term to dl_T/dW_rec (s_{T-k-1}^T da_{T-k} for a matrix): its norm
    contribution = c.recurrent_grad_norms(cc.h[:-1][lag_order], flow.da[lag_order])
    horizon, factor = _horizon(dL_ds), _fit_factor(dL_ds)
    word, advice = verdict(horizon, factor, dL_ds, c.memory_advice)
    spectral_radius, max_singular_value = c.recurrent_spectrum(p)
    return LayerReport(
        layer=layer,
        lag=list(range(T)),
        dL_ds=dL_ds.tolist(),
        jacobian=_jacobian_norms(c, p, cc).mean(axis=1).tolist(),
        contribution=contribution.mean(axis=1).tolist(),
        horizon=horizon,
        factor=factor,
        verdict=word,
        advice=advice,
        spectral_radius=spectral_radius,
        max_singular_value=max_singular_value,
        cell=c.name,
        dL_dc=mean(flow.gc).tolist() if flow.gc is not None else None,
        cell_path=_cell_path(c.gate_values(cc)[c.memory_gate]).mean(axis=1).tolist() if flow.gc is not None else None,
    )


def parameter_health(params: model.Params, windows: np.ndarray, cell: str) -> dict[str, dict[str, float]]:
    """Per parameter: norm of the gradient of the mean loss over the windows, its norm, and their ratio."""
    zero = model.zero_state(params, len(windows), cell)
    _, _, cache = model.forward(params, windows[:, :-1], windows[:, 1:], zero, cell=cell)
    grads, _ = model.backward(params, cache)
    out = {}
    for name, p in params.items():
        gn, pn = float(np.linalg.norm(grads[name])), float(np.linalg.norm(p))
        out[name] = {"grad_norm": gn, "param_norm": pn, "ratio": gn / pn if pn > 0 else math.inf}
    return out


# ---- a finite-difference check of the model's backward pass -------------------------------


def gradient_check(params: model.Params, ids: np.ndarray, cell: str, per_param: int = 12,
                   seed: int = 0) -> dict[str, float | None]:
    """Max relative error of backward against finite differences, per parameter (float64 copy).

    Checks the `per_param` largest-gradient elements of each parameter plus as many random
    ones, among elements whose gradient is at least 1e-6 (below that, float64 rounding in the
    loss swamps any finite difference; a parameter with none reports None). Each element gets
    a fourth-order central difference with a step that moves the loss by about 1e-5, small
    enough to stay in the smooth range, large enough to stay clear of rounding.
    """
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    x, y = ids[None, :-1], ids[None, 1:]
    h0 = model.zero_state(p64, 1, cell)
    _, _, cache = model.forward(p64, x, y, h0, cell=cell)
    grads, _ = model.backward(p64, cache)
    rng = np.random.default_rng(seed)
    errors: dict[str, float | None] = {}
    for name, p in p64.items():
        g = grads[name].ravel()
        flat = p.reshape(-1)  # a view: writing it perturbs the parameter
        checkable = np.flatnonzero(np.abs(g) >= 1e-6)
        if checkable.size == 0:
            errors[name] = None
            continue
        biggest = checkable[np.argsort(-np.abs(g[checkable]))[:per_param]]
        extra = rng.choice(checkable, size=min(per_param, checkable.size), replace=False)
        worst = 0.0
        for i in sorted(set(biggest.tolist()) | set(extra.tolist())):
            h = min(1e-2, 1e-5 / abs(g[i]))
            old = flat[i]
            f = {}
            for step in (-2, -1, 1, 2):
                flat[i] = old + step * h
                f[step] = model.forward(p64, x, y, h0, cell=cell)[0]
            flat[i] = old
            numeric = (8 * (f[1] - f[-1]) - (f[2] - f[-2])) / (12 * h)
            worst = max(worst, abs(numeric - g[i]) / (abs(numeric) + abs(g[i])))
        errors[name] = worst
    return errors


# ---- choosing the model and the text --------------------------------------------------------


def sample_windows(ids: np.ndarray, steps: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` random windows of steps+1 consecutive ids, shape (count, steps+1)."""
    span = steps + 1
    if len(ids) < span:
        raise ParameterError("the text has {n} characters, fewer than {steps} + 1 = {span}; lower {steps} or give {text}",
                             n=len(ids), span=span)
    starts = rng.integers(0, len(ids) - span + 1, size=count)
    return np.stack([ids[s : s + span] for s in starts])


def inspect_model(
    params: model.Params,
    cell: str,
    vocab,
    *,
    steps: int | None,
    text: str | None = None,
    corpus_ids: np.ndarray | None = None,
    windows: int = DEFAULT_WINDOWS,
    rng_seed: int = 0,
    clip_fraction: float | None = None,
    check: bool = False,
    corpus_name: str = "the text",
) -> GradientReport:
    """Analyse `text` (its first steps+1 characters) or `windows` random windows of corpus_ids
    (`corpus_name` says which text they are, in the report's `measured_on`).

    steps None: DEFAULT_STEPS, or fewer when the text is shorter (the report's `note` says so).
    The defaults are what inspect-gradients and the report both measure, so they agree.
    """
    short_text = None
    if steps is None:
        available = (len(text) if text is not None else len(corpus_ids)) - 1
        steps = min(DEFAULT_STEPS, available)
        if steps < DEFAULT_STEPS:
            short_text = available + 1
    if steps < 2:
        raise ParameterError("{steps} must be >= 2 (got {got})", got=steps)
    if windows < 1:
        raise ParameterError("{windows} must be >= 1 (got {got})", got=windows)
    if text is not None:
        unknown = vocab.unknown_chars(text[: steps + 1])
        if unknown:
            raise CharnnError(
                f"the text has characters outside the model's vocabulary: {', '.join(map(repr, unknown))}"
            )
        if len(text) < steps + 1:
            raise ParameterError("the text has {n} characters, fewer than {steps} + 1 = {span}; lower {steps}",
                                 n=len(text), span=steps + 1)
        chosen = vocab.encode(text[: steps + 1])[None, :]
        measured_on = f"the first {steps + 1} characters of the given text (T = {steps})"
    else:
        chosen = sample_windows(corpus_ids, steps, windows, np.random.default_rng(rng_seed))
        measured_on = f"{windows} random windows of T = {steps} steps of {corpus_name} (rng seed {rng_seed})"
    report = analyse(params, chosen, cell, clip_fraction)
    report.short_text, report.measured_on = short_text, measured_on
    if check:
        report.check = gradient_check(params, chosen[0], cell)
    return report
