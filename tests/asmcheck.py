"""Whether a compiled kernel is vectorised, read from the assembly Numba generates (x86-64).

A cached kernel cannot be inspected (Numba shows no assembly for code loaded from its cache), so
each kernel's Python function is compiled again here with the same options and no cache, for the
argument types charnn passes. The rules, on the kernel itself (not Numba's CPython wrapper):

  * its hottest loop runs packed float32 arithmetic on ymm/zmm registers (vmulps, vfmadd...ps, ...),
    and where the kernel has a tanh, the rational function's division is packed too;
  * no call inside any loop (a libm tanhf/expf, SVML, a Numba helper: each a scalar call per element);
  * no float32 -> float64 conversion inside a loop (a Python float literal in a float32 expression).
"""

from __future__ import annotations

import re
from collections import Counter

_LABEL = re.compile(r"^(\.LBB\d+_\d+):", re.M)
_JUMP = re.compile(r"^\s*j[a-z]+\s+(\.LBB\d+_\d+)\s*$")
_PACKED = re.compile(r"^\s*(v(?:mul|add|sub|fmadd\d*|fmsub\d*|fnmadd\d*|fnmsub\d*|div|rcp14|rcp|max|min)ps)\s+.*\b[yz]mm\d+")
_PACKED_DIV = re.compile(r"^\s*(vdivps|vrcp14ps|vrcpps)\s+.*\b[yz]mm\d+")
_CALL = re.compile(r"^\s*(?:callq?|jmpq?)\s+\*?%?([A-Za-z_.][\w.@$]*)")
_FUNC = re.compile(r"^([A-Za-z_][\w.$]*):", re.M)
_SYMBOL = re.compile(r"movabsq\s+\$([A-Za-z_.][\w.@$]*),\s*%(\w+)")  # a callee's address loaded into a register
_PROMOTE = re.compile(r"^\s*(v?cvtps2pd|v?cvtss2sd)\b")


def compile_fresh(fn, args):
    """fn's Python function jitted again with its options and no cache, compiled for args' types."""
    from numba import njit

    options = {k: v for k, v in fn.targetoptions.items() if k not in ("cache", "nopython")}
    fresh = njit(**options)(fn.py_func)
    fresh(*args)
    return fresh


def assembly(fn, args) -> str:
    return "\n".join(compile_fresh(fn, args).inspect_asm().values())


def _own_code(asm: str) -> str:
    """The kernel's own functions, without Numba's CPython wrapper (which unboxes in loops of its own)."""
    starts = [(m.start(), m.group(1)) for m in _FUNC.finditer(asm)]
    parts = [(asm[a:(starts[k + 1][0] if k + 1 < len(starts) else len(asm))], name) for k, (a, name) in enumerate(starts)]
    own = [text for text, name in parts if "cpython" not in name and "cfunc" not in name]
    return "\n".join(own) if own else asm


def loops(asm: str) -> list[list[str]]:
    """Loop bodies: the lines from a label to a later jump back to it."""
    lines = asm.split("\n")
    where = {m.group(1): i for i, line in enumerate(lines) for m in [_LABEL.match(line)] if m}
    bodies = []
    for j, line in enumerate(lines):
        m = _JUMP.match(line)
        if m and m.group(1) in where and where[m.group(1)] < j:
            bodies.append(lines[where[m.group(1)]:j + 1])
    return bodies


def analyse(asm: str) -> dict:
    code = _own_code(asm)
    bodies = loops(code)
    loaded = {m.group(2): m.group(1) for m in _SYMBOL.finditer(code)}  # register -> the symbol put there
    packed = [sum(1 for line in body if _PACKED.match(line)) for body in bodies]
    hot = bodies[max(range(len(bodies)), key=packed.__getitem__)] if bodies and max(packed) else []
    calls = sorted({loaded.get(m.group(1), m.group(1)) for body in bodies for line in body
                    for m in [_CALL.match(line)] if m and not m.group(1).startswith(".LBB")})
    return {"hot_loop_packed_ops": max(packed, default=0),
            "hot_loop_ops": dict(Counter(m.group(1) for line in hot for m in [_PACKED.match(line)] if m)),
            "packed_div": any(_PACKED_DIV.match(line) for line in hot),
            "calls_in_loops": calls,
            "f64_promotions_in_loops": sum(1 for body in bodies for line in body if _PROMOTE.match(line))}


def problems(asm: str, needs_div: bool) -> list[str]:
    """What breaks the rules above (empty: vectorised)."""
    r = analyse(asm)
    found = []
    if r["hot_loop_packed_ops"] < 3:
        found.append(f"no vectorised loop ({r['hot_loop_packed_ops']} packed ymm/zmm float ops in the hottest)")
    if needs_div and not r["packed_div"]:
        found.append("the tanh's division in the hot loop is not packed")
    if r["calls_in_loops"]:
        found.append(f"calls inside loops: {r['calls_in_loops']}")
    if r["f64_promotions_in_loops"]:
        found.append(f"{r['f64_promotions_in_loops']} float32 -> float64 conversions inside loops")
    return found
