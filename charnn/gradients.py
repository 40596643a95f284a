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

from charnn import model
from charnn.errors import CharnnError

HORIZON_FRACTION = 1e-3  # the horizon is where dL/ds falls below this fraction of its k = 0 value
SHORT_HORIZON = 20  # steps; a memory shorter than this, decaying, is "vanishing"


@dataclass
class LayerReport:
    layer: int
    lag: list[int]
    dL_ds: list[float]
    jacobian: list[float]
    contribution: list[float]
    horizon: int | None  # None: the gradient never fell below HORIZON_FRACTION within T
    factor: float  # fitted per-step growth (> 1) or decay (< 1) of dL/ds
    verdict: str  # vanishing | exploding | healthy
    advice: str
    spectral_radius: float
    max_singular_value: float


@dataclass
class GradientReport:
    layers: list[LayerReport]
    params: dict[str, dict[str, float]]
    clip_fraction: float | None = None
    steps: int = 0
    windows: int = 0
    check: dict[str, float] | None = field(default=None)

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
        }
        if self.check is not None:
            out["check"] = clean(self.check)
        return out


# ---- the per-lag quantities ---------------------------------------------------------------


def _forward_states(params: model.Params, ids: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """States per layer, (T+1, N, H) with a zero row 0, and the last step's probabilities (N, V)."""
    N = ids.shape[0]
    x_ids, y = ids[:, :-1], ids[:, 1:]
    _, _, cache = model.forward(params, x_ids, y, model.zero_state(params, N))
    T = x_ids.shape[1]
    last_probs = cache.probs.reshape(T, N, -1)[-1]
    return cache.states, last_probs


def _last_step_state_grads(params: model.Params, ids: np.ndarray, states: list, last_probs: np.ndarray):
    """dl_T/ds_t for every layer and step: list of (T, N, H), from the last step's loss only.

    Each window's l_T depends only on its own row, so one batched pass serves all windows.
    """
    N = ids.shape[0]
    T = ids.shape[1] - 1
    L = len(states)
    dlogits = last_probs.copy()
    dlogits[np.arange(N), ids[:, -1]] -= 1
    dS = np.zeros((T, N, params["head.W_hy"].shape[0]))
    dS[-1] = dlogits @ params["head.W_hy"].T
    total = [None] * L
    for layer in range(L - 1, -1, -1):
        S = states[layer]
        W_hh = params[f"rnn.{layer}.W_hh"]
        dtanh = 1 - S[1:] ** 2
        g = np.empty_like(dS)  # total gradient on s_t
        dh = np.zeros_like(dS[0])
        for t in range(T - 1, -1, -1):
            g[t] = dS[t] + dh
            dh = (g[t] * dtanh[t]) @ W_hh.T
        total[layer] = g
        if layer > 0:
            dS = (g * dtanh) @ params[f"rnn.{layer}.W_xh"].T
    return total


def _top_singular_value(M: np.ndarray, U: np.ndarray, tol: float = 1e-10, max_iter: int = 500) -> tuple[float, np.ndarray]:
    """Largest singular value of M by block subspace iteration, warm-started at basis U (H, b).

    A block converges like (sigma_{b+1} / sigma_1)^2 per sweep, far faster than a single
    vector when the top singular values are close; consecutive lags change M little, so
    the previous basis is an excellent start. Falls back to an exact SVD if it stalls.
    """
    sigma = 0.0
    for _ in range(max_iter):
        V, _ = np.linalg.qr(M.T @ U)
        U, R = np.linalg.qr(M @ V)
        new_sigma = float(np.linalg.svd(R, compute_uv=False)[0])
        if abs(new_sigma - sigma) <= tol * new_sigma:
            return new_sigma, U
        sigma = new_sigma
    return float(np.linalg.svd(M, compute_uv=False)[0]), U


def _jacobian_norms(W_hh: np.ndarray, S: np.ndarray) -> np.ndarray:
    """||ds_T/ds_{T-k}||_2 for k = 0..T-1 and each window: (T, N).

    In the row convention s_t = tanh(... + s_{t-1} W_hh), so ds_t/ds_{t-1} = diag(1 - s_t^2) W_hh^T
    (as an H x H matrix acting on column vectors). The product is rescaled as it grows so that
    exploding or vanishing products stay representable; the scale is kept in log space.
    """
    T, N, H = S.shape[0] - 1, S.shape[1], S.shape[2]
    out = np.empty((T, N))
    out[0] = 1.0
    for n in range(N):
        M = np.eye(H)
        log_scale = 0.0
        U = np.linalg.qr(np.random.default_rng(n).standard_normal((H, min(H, 8))))[0]
        for k in range(1, T):
            t = T - k + 1  # multiply in J_{T-k+1}: ds_T/ds_{T-k} = J_T ... J_{T-k+1}
            M *= 1 - S[t, n] ** 2  # M @ diag(1 - s_t^2) ...
            M = M @ W_hh.T  # ... @ W_hh^T, without forming the step Jacobian
            scale = np.abs(M).max()
            if scale == 0 or not np.isfinite(scale):
                out[k:, n] = 0.0 if scale == 0 else np.inf
                break
            M /= scale
            log_scale += math.log(scale)
            sigma, U = _top_singular_value(M, U)
            out[k, n] = math.exp(min(log_scale + math.log(sigma), 709.0)) if sigma > 0 else 0.0
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


def verdict(horizon: int | None, factor: float, dL_ds: np.ndarray) -> tuple[str, str]:
    """A one-word verdict that follows the measured numbers, and advice that fits it."""
    if not np.all(np.isfinite(dL_ds)) or factor > 1.0:
        return "exploding", (
            "gradients grow going back in time: keep gradient clipping on (train.grad_clip), "
            "use a smaller init (e.g. model.init_scale 0.08) or model.init orthogonal"
        )
    if horizon is not None and horizon < SHORT_HORIZON:
        return "vanishing", (
            f"the loss barely sees more than {horizon} steps back: try model.init orthogonal, "
            "a larger init scale, or a gated cell (LSTM/GRU) for long-range memory"
        )
    return "healthy", "gradients reach far back without growing: nothing to fix"


def analyse(params: model.Params, windows: np.ndarray, clip_fraction: float | None = None) -> GradientReport:
    """The full report for id windows of shape (N, T+1), each run from a zero state."""
    windows = np.asarray(windows)
    if windows.ndim != 2 or windows.shape[1] < 3:
        raise CharnnError("gradient analysis needs windows of at least T+1 = 3 characters (T >= 2)")
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    T = windows.shape[1] - 1
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        states, last_probs = _forward_states(p64, windows)
        grads_s = _last_step_state_grads(p64, windows, states, last_probs)
        layers = []
        for layer, (S, g) in enumerate(zip(states, grads_s)):
            # lag k <-> state index t = T-k (s_t is S[t], and g[t-1] = dl_T/ds_t)
            g_lag = g[::-1]  # (T, N, H): row k is dl_T/ds_{T-k}
            dL_ds = np.linalg.norm(g_lag, axis=2)
            delta_norm = np.linalg.norm(g_lag * (1 - S[1:][::-1] ** 2), axis=2)
            prev_norm = np.linalg.norm(S[:-1][::-1], axis=2)  # ||s_{T-k-1}||, zero before the first step
            W_hh = p64[f"rnn.{layer}.W_hh"]
            mean_dL = dL_ds.mean(axis=1)
            horizon = _horizon(mean_dL)
            factor = _fit_factor(mean_dL)
            word, advice = verdict(horizon, factor, mean_dL)
            layers.append(LayerReport(
                layer=layer,
                lag=list(range(T)),
                dL_ds=mean_dL.tolist(),
                jacobian=_jacobian_norms(W_hh, S).mean(axis=1).tolist(),
                contribution=(prev_norm * delta_norm).mean(axis=1).tolist(),
                horizon=horizon,
                factor=factor,
                verdict=word,
                advice=advice,
                spectral_radius=float(np.abs(np.linalg.eigvals(W_hh)).max()),
                max_singular_value=float(np.linalg.norm(W_hh, 2)),
            ))
    return GradientReport(layers, parameter_health(p64, windows), clip_fraction, steps=T, windows=len(windows))


def parameter_health(params: model.Params, windows: np.ndarray) -> dict[str, dict[str, float]]:
    """Per parameter: norm of the gradient of the mean loss over the windows, its norm, and their ratio."""
    _, _, cache = model.forward(params, windows[:, :-1], windows[:, 1:], model.zero_state(params, len(windows)))
    grads, _ = model.backward(params, cache)
    out = {}
    for name, p in params.items():
        gn, pn = float(np.linalg.norm(grads[name])), float(np.linalg.norm(p))
        out[name] = {"grad_norm": gn, "param_norm": pn, "ratio": gn / pn if pn > 0 else math.inf}
    return out


# ---- a finite-difference check of the model's backward pass -------------------------------


def gradient_check(params: model.Params, ids: np.ndarray, per_param: int = 12, seed: int = 0) -> dict[str, float | None]:
    """Max relative error of backward against finite differences, per parameter (float64 copy).

    Checks the `per_param` largest-gradient elements of each parameter plus as many random
    ones, among elements whose gradient is at least 1e-6 (below that, float64 rounding in the
    loss swamps any finite difference; a parameter with none reports None). Each element gets
    a fourth-order central difference with a step that moves the loss by about 1e-5, small
    enough to stay in the smooth range, large enough to stay clear of rounding.
    """
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    x, y = ids[None, :-1], ids[None, 1:]
    h0 = model.zero_state(p64, 1)
    _, _, cache = model.forward(p64, x, y, h0)
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
                f[step] = model.forward(p64, x, y, h0)[0]
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
        raise CharnnError(
            f"the text has {len(ids)} characters, fewer than --steps + 1 = {span}; lower --steps or give --text"
        )
    starts = rng.integers(0, len(ids) - span + 1, size=count)
    return np.stack([ids[s : s + span] for s in starts])


def inspect_model(
    params: model.Params,
    vocab,
    *,
    steps: int,
    text: str | None = None,
    corpus_ids: np.ndarray | None = None,
    windows: int = 8,
    rng_seed: int = 0,
    clip_fraction: float | None = None,
    check: bool = False,
) -> GradientReport:
    """Analyse `text` (its first steps+1 characters) or `windows` random windows of corpus_ids."""
    if steps < 2:
        raise CharnnError(f"--steps must be >= 2 (got {steps})")
    if windows < 1:
        raise CharnnError(f"--windows must be >= 1 (got {windows})")
    if text is not None:
        unknown = vocab.unknown_chars(text[: steps + 1])
        if unknown:
            raise CharnnError(
                f"the text has characters outside the model's vocabulary: {', '.join(map(repr, unknown))}"
            )
        if len(text) < steps + 1:
            raise CharnnError(
                f"the text has {len(text)} characters, fewer than --steps + 1 = {steps + 1}; lower --steps"
            )
        chosen = vocab.encode(text[: steps + 1])[None, :]
    else:
        chosen = sample_windows(corpus_ids, steps, windows, np.random.default_rng(rng_seed))
    report = analyse(params, chosen, clip_fraction)
    if check:
        report.check = gradient_check(params, chosen[0])
    return report
