"""What layer 0 reads: characters, turned into its input part xa_t = x_t W_in + b_in.

    OneHot     one character at a time: x_t is its one-hot vector, so xa_t is a row of W_in + b_in
    Window(W)  the last W characters: x_t is their one-hot vectors side by side (block j for the
               character j steps back), so xa_t is a sum of W row lookups; it carries the last
               W - 1 characters (as id + 1, 0 meaning "before the text") from chunk to chunk

A cell that is `windowed` (the feed-forward mlp) gets a Window of model.context characters;
every other cell reads one character at a time. What an encoder carries rides in layer 0's
slot of the model's carried state, which a windowed cell (no recurrence) leaves empty.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from charnn.nn.workspace import Workspace


class OneHot:
    """Layer 0 reads one character at a time; it carries nothing across chunks."""

    window = 1

    def fan_in(self, vocab_size: int) -> int:
        return vocab_size

    def context_width(self) -> int:
        return 0

    def input_part(self, W_in: np.ndarray, b_in: np.ndarray, ids_tm: np.ndarray, context, out: np.ndarray):
        """out (T, B, kH) = W_in[ids] + b_in; returns None (nothing carried). The row lookup equals
        one_hot(ids) @ W_in; adding the bias to the V rows first gives the same sums as adding it to
        all T*B looked-up rows, and mode="wrap" avoids the whole-output buffer of mode="raise"
        (4x slower; the model has checked the ids)."""
        np.take(W_in + b_in, ids_tm, axis=0, out=out, mode="wrap")
        return None

    def input_grads(self, dxa2: np.ndarray, ids_tm: np.ndarray, context, W_in: np.ndarray, ws: Workspace):
        """The gradient of W_in from dxa2 (T*B, kH): the sum of the rows of each id, written as
        one_hot(ids)^T @ dxa2, one GEMM, far faster than np.add.at (or sort + reduceat)."""
        one_hot_t = ws.take((W_in.shape[0], ids_tm.size), dxa2.dtype)
        one_hot_t.fill(0)
        one_hot_t[ids_tm.reshape(-1), np.arange(ids_tm.size)] = 1
        grad = one_hot_t @ dxa2
        ws.give(one_hot_t)
        return grad

    def reader(self, W_in: np.ndarray, b_in: np.ndarray) -> Callable:
        """For sampling: read(char_id, context) -> (the input part of one character, context)."""
        table = W_in + b_in
        return lambda char_id, context: (table[char_id], context)

    def reference_input(self, ids_t: np.ndarray, context: np.ndarray, vocab_size: int):
        """The specification: (the explicit one-hot inputs (B, V) of one step, the context after it)."""
        return np.eye(vocab_size)[ids_t], context


ONE_HOT = OneHot()


class Window:
    """Layer 0 reads the last `window` characters at once; it carries the last window - 1 of them."""

    def __init__(self, window: int):
        self.window = window

    def fan_in(self, vocab_size: int) -> int:
        return self.window * vocab_size

    def context_width(self) -> int:
        return self.window - 1

    def _ids(self, ids_tm: np.ndarray, context: np.ndarray) -> np.ndarray:
        """(T + W - 1, B) ids + 1, oldest first: the carried characters, then the chunk's (0 = none)."""
        return np.concatenate([context.T.astype(np.int64), ids_tm.astype(np.int64) + 1])

    def input_part(self, W_in: np.ndarray, b_in: np.ndarray, ids_tm: np.ndarray, context: np.ndarray,
                   out: np.ndarray) -> np.ndarray:
        """The sum of W row lookups (one per position back); returns the last W - 1 characters."""
        T, carried = ids_tm.shape[0], self.window - 1
        V = W_in.shape[0] // self.window
        ctx = self._ids(ids_tm, context)
        out[...] = b_in
        for j in range(self.window):  # block j: the character j steps back
            block = np.concatenate([np.zeros((1, W_in.shape[1]), W_in.dtype), W_in[j * V : (j + 1) * V]])
            out += block[ctx[carried - j : carried - j + T]]  # id 0 (before the text) adds nothing
        return np.ascontiguousarray(ctx[len(ctx) - carried:].T)

    def input_grads(self, dxa2: np.ndarray, ids_tm: np.ndarray, context: np.ndarray, W_in: np.ndarray,
                    ws: Workspace) -> np.ndarray:
        T, B = ids_tm.shape
        carried, V = self.window - 1, W_in.shape[0] // self.window
        ctx = self._ids(ids_tm, context)
        grad = np.zeros_like(W_in)
        for j in range(self.window):
            ids = ctx[carried - j : carried - j + T].reshape(-1)
            one_hot_t = np.zeros((V + 1, T * B), dxa2.dtype)
            one_hot_t[ids, np.arange(T * B)] = 1  # the sum of rows per id, as one GEMM
            grad[j * V : (j + 1) * V] = (one_hot_t @ dxa2)[1:]
        return grad

    def reader(self, W_in: np.ndarray, b_in: np.ndarray) -> Callable:
        V = W_in.shape[0] // self.window

        def read(char_id: int, context: np.ndarray):
            ctx = np.concatenate([context.astype(np.int64), [char_id + 1]])  # oldest first
            xa = b_in.copy()
            for j, c in enumerate(ctx[::-1]):  # j steps back
                if c > 0:
                    xa += W_in[j * V + c - 1]
            return xa, ctx[1:]

        return read

    def reference_input(self, ids_t: np.ndarray, context: np.ndarray, vocab_size: int):
        """The W one-hot vectors concatenated, block j for the character j steps back."""
        history = np.concatenate([context.astype(np.int64), ids_t[:, None] + 1], axis=1)  # (B, W), oldest first
        B, W = history.shape
        x = np.zeros((B, W * vocab_size))
        for j in range(W):
            c = history[:, W - 1 - j]
            rows = np.flatnonzero(c > 0)
            x[rows, j * vocab_size + c[rows] - 1] = 1
        return x, history[:, 1:]


def encoder(windowed: bool, window: int):
    """The encoder a cell's layer 0 reads through: a Window of `window` characters for a windowed cell."""
    return Window(window) if windowed else ONE_HOT
