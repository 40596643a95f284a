"""The web page's one hot loop as WebAssembly: out = b + W x with 128-bit SIMD.

A matrix-vector product is nearly all of a recurrent step (an H = 512 LSTM: 1.05 M of its
1.08 M multiply-adds per character), and plain JavaScript runs it one scalar at a time; this
module, four f32x4 lanes over four rows at once, is several times faster in Chromium (see
benchmarks/bench_web.py). It is assembled here, opcode by opcode, so the page carries no
opaque binary and the source is this file; the page falls back to plain JavaScript where
WebAssembly SIMD is missing.

    matvec(w, x, b, out, m, n)    byte addresses into the imported memory "env.mem";
        out[j] = b[j] + sum_i w[j*n + i] * x[i]   for j < m,  float32,
        m a multiple of 4, n a multiple of 4; b may be out (each row reads b[j] before writing).
"""

from __future__ import annotations


def _leb_u(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _leb_s(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        done = (n == 0 and not byte & 0x40) or (n == -1 and byte & 0x40)
        out.append(byte | (0 if done else 0x80))
        if done:
            return bytes(out)


def _vec(items: list[bytes]) -> bytes:
    return _leb_u(len(items)) + b"".join(items)


def _name(text: str) -> bytes:
    return _leb_u(len(text)) + text.encode()


def _section(code: int, body: bytes) -> bytes:
    return bytes([code]) + _leb_u(len(body)) + body


I32, V128, EMPTY = 0x7F, 0x7B, 0x40
# the opcodes used below (WebAssembly 2.0 core and its fixed-width SIMD proposal, prefix 0xFD)
OPS = {
    "block": b"\x02", "loop": b"\x03", "end": b"\x0b", "br": b"\x0c", "br_if": b"\x0d",
    "local.get": b"\x20", "local.set": b"\x21", "i32.const": b"\x41", "f32.load": b"\x2a", "f32.store": b"\x38",
    "i32.ge_u": b"\x4f", "i32.add": b"\x6a", "i32.mul": b"\x6c", "i32.shl": b"\x74", "f32.add": b"\x92",
    "v128.load": b"\xfd" + _leb_u(0), "v128.const": b"\xfd" + _leb_u(12), "f32x4.extract_lane": b"\xfd" + _leb_u(31),
    "f32x4.add": b"\xfd" + _leb_u(228), "f32x4.mul": b"\xfd" + _leb_u(230),
}
ALIGN = {"f32.load": 2, "f32.store": 2, "v128.load": 4}  # log2 of the natural alignment


def _assemble(program: list[tuple], local_index: dict[str, int]) -> bytes:
    """Instructions as tuples: (op,), (op, immediate); loads and stores take (op, offset)."""
    out = bytearray()
    for op, *args in program:
        out += OPS[op]
        if op in ("block", "loop"):
            out.append(EMPTY)
        elif op in ("local.get", "local.set"):
            out += _leb_u(local_index[args[0]])
        elif op in ("br", "br_if"):
            out += _leb_u(args[0])
        elif op == "i32.const":
            out += _leb_s(args[0])
        elif op in ALIGN:
            out += _leb_u(ALIGN[op]) + _leb_u(args[0] if args else 0)
        elif op == "v128.const":
            out += bytes(16)
        elif op == "f32x4.extract_lane":
            out.append(args[0])
    return bytes(out)


PARAMS = ["w", "x", "b", "out", "m", "n"]
LOCALS = [("j", I32), ("i", I32), ("rb", I32), ("r0", I32), ("r1", I32), ("r2", I32), ("r3", I32),
          ("a0", V128), ("a1", V128), ("a2", V128), ("a3", V128), ("xv", V128)]


def _get(name):
    return ("local.get", name)


def _set(name):
    return ("local.set", name)


def _matvec_body() -> list[tuple]:
    rows = [f"r{k}" for k in range(4)]
    code = [_get("n"), ("i32.const", 2), ("i32.shl",), _set("rb"),  # row bytes
            ("i32.const", 0), _set("j"),
            ("block",), ("loop",),  # for j in 0, 4, 8, ... < m: four rows per pass, sharing each load of x
            _get("j"), _get("m"), ("i32.ge_u",), ("br_if", 1),
            _get("w"), _get("j"), _get("rb"), ("i32.mul",), ("i32.add",), _set("r0")]
    for k in range(1, 4):
        code += [_get(rows[k - 1]), _get("rb"), ("i32.add",), _set(rows[k])]
    for k in range(4):
        code += [("v128.const",), _set(f"a{k}")]
    code += [("i32.const", 0), _set("i"),
             ("block",), ("loop",),  # for i in 0, 16, 32, ... < n * 4 bytes: a{k} += w[row k, i:i+4] * x[i:i+4]
             _get("i"), _get("rb"), ("i32.ge_u",), ("br_if", 1),
             _get("x"), _get("i"), ("i32.add",), ("v128.load",), _set("xv")]
    for k in range(4):
        code += [_get(f"a{k}"), _get(rows[k]), _get("i"), ("i32.add",), ("v128.load",), _get("xv"), ("f32x4.mul",),
                 ("f32x4.add",), _set(f"a{k}")]
    code += [_get("i"), ("i32.const", 16), ("i32.add",), _set("i"), ("br", 0), ("end",), ("end",)]
    for k in range(4):  # out[j + k] = b[j + k] + the four lanes of a{k}, summed as (l0 + l1) + (l2 + l3)
        code += [_get("out"), _get("j"), ("i32.const", 2), ("i32.shl",), ("i32.add",),
                 _get("b"), _get("j"), ("i32.const", 2), ("i32.shl",), ("i32.add",), ("f32.load", 4 * k),
                 _get(f"a{k}"), ("f32x4.extract_lane", 0), _get(f"a{k}"), ("f32x4.extract_lane", 1), ("f32.add",),
                 _get(f"a{k}"), ("f32x4.extract_lane", 2), _get(f"a{k}"), ("f32x4.extract_lane", 3), ("f32.add",),
                 ("f32.add",), ("f32.add",), ("f32.store", 4 * k)]
    code += [_get("j"), ("i32.const", 4), ("i32.add",), _set("j"), ("br", 0), ("end",), ("end",), ("end",)]
    return code


def matvec_module() -> bytes:
    """The module's bytes: imports env.mem (a memory), exports matvec."""
    index = {name: i for i, name in enumerate(PARAMS + [n for n, _ in LOCALS])}
    functype = b"\x60" + _vec([bytes([I32])] * len(PARAMS)) + _vec([])
    locals_ = _vec([_leb_u(1) + bytes([t]) for _, t in LOCALS])
    body = locals_ + _assemble(_matvec_body(), index)
    return (b"\x00asm" + (1).to_bytes(4, "little")
            + _section(1, _vec([functype]))
            + _section(2, _vec([_name("env") + _name("mem") + b"\x02" + b"\x00" + _leb_u(1)]))
            + _section(3, _vec([_leb_u(0)]))
            + _section(7, _vec([_name("matvec") + b"\x00" + _leb_u(0)]))
            + _section(10, _vec([_leb_u(len(body)) + body])))
