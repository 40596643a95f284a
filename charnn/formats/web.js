// charnn web export: a recurrent character model that samples in this page, with no server and
// no network. The weights are embedded below the page (#charnn-weights, base64, float16 or
// float32, in torch's names and layouts: see charnn/formats/tensors.py), described by
// #charnn-model. One step reads a character and returns the next character's logits, exactly
// as charnn's Reader does; generation follows charnn.nn.sampling.generate. The matrix-vector
// products run in a small WebAssembly SIMD module (#charnn-wasm, built by
// charnn/formats/wasm.py) or, where that is missing, in plain JavaScript. For tests and tools:
// window.charnn.probs(text), .generate(options), .useWasm(flag).
"use strict";
(function () {
  const model = JSON.parse(document.getElementById("charnn-model").textContent);
  const $ = (id) => document.getElementById(id);
  const L = model.num_layers, H = model.hidden_size, V = model.vocab.length, cell = model.cell;
  const G = {rnn: 1, lstm: 4, gru: 3}[cell];
  const up4 = (n) => (n + 3) & ~3;
  const Hp = up4(H), Vp = up4(V);  // the SIMD kernel takes rows and columns in fours: zero padding

  function bytesOf(base64) {
    const raw = atob(base64), out = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }

  function halfTable() {  // every float16 bit pattern as its float32 value
    const table = new Float32Array(65536);
    for (let bits = 0; bits < 65536; bits++) {
      const sign = bits & 0x8000 ? -1 : 1, exp = (bits >> 10) & 0x1f, frac = bits & 0x3ff;
      table[bits] = exp === 0 ? sign * frac * 2 ** -24
        : exp === 31 ? (frac ? NaN : sign * Infinity) : sign * (1 + frac / 1024) * 2 ** (exp - 15);
    }
    return table;
  }

  function readTensors() {  // name -> {shape, data: Float32Array}, in the file's order
    const bytes = bytesOf(document.getElementById("charnn-weights").textContent.trim());
    const view = new DataView(bytes.buffer), half = model.dtype === "float16", out = {};
    const table = half ? halfTable() : null;
    let offset = 0;
    for (const [name, shape] of model.tensors) {
      const n = shape.reduce((a, b) => a * b, 1), data = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        data[i] = half ? table[view.getUint16(offset + 2 * i, true)] : view.getFloat32(offset + 4 * i, true);
      }
      offset += n * (half ? 2 : 4);
      out[name] = {shape, data};
    }
    return out;
  }

  // ---- the arithmetic: one Float32Array heap, shared with the WebAssembly module --------------------

  const tensors = readTensors();
  const layout = [];  // per layer: offsets of its padded matrices, biases and vectors in the heap
  let size = 0;
  const alloc = (n) => { const at = size; size += up4(n); return at; };
  for (let l = 0; l < L; l++) {
    const inp = l === 0 ? 0 : Hp;  // layer 0 reads rows of weight_ih directly (its input is one-hot)
    layout.push({
      wih: l === 0 ? alloc(V * G * Hp) : alloc(G * Hp * inp), whh: alloc(G * Hp * Hp),
      bih: alloc(G * Hp), bhh: alloc(G * Hp), xa: alloc(G * Hp), ha: alloc(G * Hp), h: alloc(Hp), c: alloc(Hp),
    });
  }
  const head = {w: alloc(Vp * Hp), b: alloc(Vp), out: alloc(Vp)};
  const memory = new WebAssembly.Memory({initial: Math.ceil((size * 4) / 65536) + 1});
  const heap = new Float32Array(memory.buffer);

  // a (rows x cols) torch matrix into the heap, gate block g's row r at g * Hp + r, columns padded
  function place(at, t, gates, rowLen, cols, stride) {
    const [rows, n] = t.shape, per = rows / gates;
    for (let r = 0; r < rows; r++) {
      const dst = at + (Math.floor(r / per) * rowLen + (r % per)) * stride;
      heap.set(t.data.subarray(r * n, r * n + cols), dst);
    }
  }
  function placeBias(at, t, gates, rowLen) {
    const per = t.shape[0] / gates;
    for (let r = 0; r < t.shape[0]; r++) heap[at + Math.floor(r / per) * rowLen + (r % per)] = t.data[r];
  }
  for (let l = 0; l < L; l++) {
    const s = layout[l], wih = tensors[`rnn.weight_ih_l${l}`];
    if (l === 0) {  // transposed: the row for character v holds weight_ih[:, v] (gate-padded)
      for (let r = 0; r < G * H; r++) {
        const dst = Math.floor(r / H) * Hp + (r % H);
        for (let v = 0; v < V; v++) heap[s.wih + v * G * Hp + dst] = wih.data[r * V + v];
      }
    } else {
      place(s.wih, wih, G, Hp, H, Hp);
    }
    place(s.whh, tensors[`rnn.weight_hh_l${l}`], G, Hp, H, Hp);
    placeBias(s.bih, tensors[`rnn.bias_ih_l${l}`], G, Hp);
    placeBias(s.bhh, tensors[`rnn.bias_hh_l${l}`], G, Hp);
  }
  place(head.w, tensors["head.weight"], 1, Vp, H, Hp);
  placeBias(head.b, tensors["head.bias"], 1, Vp);

  function matvecJS(w, x, b, out, m, n) {  // out[j] = b[j] + w[j, :] . x, like the module's matvec
    for (let j = 0; j < m; j++) {
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      const row = w + j * n;
      for (let i = 0; i < n; i += 4) {
        s0 += heap[row + i] * heap[x + i]; s1 += heap[row + i + 1] * heap[x + i + 1];
        s2 += heap[row + i + 2] * heap[x + i + 2]; s3 += heap[row + i + 3] * heap[x + i + 3];
      }
      heap[out + j] = heap[b + j] + (s0 + s1 + s2 + s3);
    }
  }
  let wasmMatvec = null;
  try {
    const code = bytesOf(document.getElementById("charnn-wasm").textContent.trim());
    if (WebAssembly.validate(code)) {
      const module = new WebAssembly.Module(code);
      const fn = new WebAssembly.Instance(module, {env: {mem: memory}}).exports.matvec;
      wasmMatvec = (w, x, b, out, m, n) => fn(4 * w, 4 * x, 4 * b, 4 * out, m, n);
    }
  } catch (e) { wasmMatvec = null; }  // no SIMD here: plain JavaScript does the same sums
  let matvec = wasmMatvec || matvecJS;

  const sigmoid = (a) => 1 / (1 + Math.exp(-a));

  function reset() {
    for (const s of layout) { heap.fill(0, s.h, s.h + Hp); heap.fill(0, s.c, s.c + Hp); }
  }

  function step(id) {  // read character `id`; the next character's logits are heap[head.out .. + V]
    let x = -1;
    for (let l = 0; l < L; l++) {
      const s = layout[l], n = G * Hp;
      if (l === 0) {
        for (let j = 0; j < n; j++) heap[s.xa + j] = heap[s.wih + id * n + j] + heap[s.bih + j];
      } else {
        matvec(s.wih, x, s.bih, s.xa, n, Hp);
      }
      matvec(s.whh, s.h, s.bhh, s.ha, n, Hp);
      const xa = s.xa, ha = s.ha, h = s.h, c = s.c;
      if (cell === "rnn") {
        for (let i = 0; i < H; i++) heap[h + i] = Math.tanh(heap[xa + i] + heap[ha + i]);
      } else if (cell === "lstm") {
        for (let i = 0; i < H; i++) {
          const ig = sigmoid(heap[xa + i] + heap[ha + i]);
          const fg = sigmoid(heap[xa + Hp + i] + heap[ha + Hp + i]);
          const g = Math.tanh(heap[xa + 2 * Hp + i] + heap[ha + 2 * Hp + i]);
          const og = sigmoid(heap[xa + 3 * Hp + i] + heap[ha + 3 * Hp + i]);
          heap[c + i] = fg * heap[c + i] + ig * g;
          heap[h + i] = og * Math.tanh(heap[c + i]);
        }
      } else {  // gru: n = tanh(xa_n + r * ha_n), h = (1 - z) n + z h
        for (let i = 0; i < H; i++) {
          const r = sigmoid(heap[xa + i] + heap[ha + i]);
          const z = sigmoid(heap[xa + Hp + i] + heap[ha + Hp + i]);
          const n = Math.tanh(heap[xa + 2 * Hp + i] + r * heap[ha + 2 * Hp + i]);
          heap[h + i] = (1 - z) * n + z * heap[h + i];
        }
      }
      x = h;
    }
    matvec(head.w, x, head.b, head.out, Vp, Hp);
  }

  // ---- text to symbols and back --------------------------------------------------------------------

  const index = new Map(model.vocab.map((ch, i) => [ch, i]));
  const REPLACEMENT = "\ufffd";
  const bytesMode = model.encoding === "bytes";

  function symbolsOf(text) {  // as charnn's to_symbols and map_rare
    let symbols = bytesMode ? Array.from(new TextEncoder().encode(text), (b) => String.fromCharCode(b)) : Array.from(text);
    const unknown = [...new Set(symbols.filter((ch) => !index.has(ch)))].sort();
    if (unknown.length && index.has(REPLACEMENT)) {
      symbols = symbols.map((ch) => index.has(ch) ? ch : REPLACEMENT);
    } else if (unknown.length) {
      throw new Error("the seed has characters outside the model's vocabulary: " +
                      unknown.map((ch) => JSON.stringify(ch)).join(", ") + "; use only characters from its training text");
    }
    return symbols.map((ch) => index.get(ch));
  }

  function textDecoder() {  // symbols to text as they come (bytes mode: once a character's bytes are complete)
    if (!bytesMode) return (id) => model.vocab[id];
    const decoder = new TextDecoder("utf-8");
    return (id) => id === null ? decoder.decode() : decoder.decode(new Uint8Array([model.vocab[id].charCodeAt(0)]), {stream: true});
  }

  // ---- sampling ------------------------------------------------------------------------------------

  function rngFrom(seed) {  // mulberry32: a small, seedable generator (not numpy's: only greedy text matches charnn)
    let a = (seed >>> 0) || 0x9e3779b9;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = Math.imul(a ^ (a >>> 15), a | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  function argmax(at, n) {  // the first largest, as numpy's argmax
    let best = 0;
    for (let i = 1; i < n; i++) if (heap[at + i] > heap[at + best]) best = i;
    return best;
  }

  function choose(o, random) {
    if (o.greedy) return argmax(head.out, V);
    const z = new Float64Array(V);
    for (let i = 0; i < V; i++) z[i] = heap[head.out + i] / o.temperature;
    if (o.topK > 0 && o.topK < V) {
      const kth = Array.from(z).sort((a, b) => b - a)[o.topK - 1];
      for (let i = 0; i < V; i++) if (z[i] < kth) z[i] = -Infinity;
    }
    let max = -Infinity, total = 0;
    for (let i = 0; i < V; i++) max = Math.max(max, z[i]);
    const cdf = new Float64Array(V);
    for (let i = 0; i < V; i++) { total += Math.exp(z[i] - max); cdf[i] = total; }
    const u = random() * total;
    for (let i = 0; i < V; i++) if (cdf[i] > u) return i;
    return V - 1;
  }

  function firstCharacter(o, random) {  // a seedless start without line breaks: by the training text's frequencies
    const counts = model.char_counts;
    if (!counts || counts.length !== V || !(counts.reduce((a, b) => a + b, 0) > 0)) return Math.min(V - 1, Math.floor(random() * V));
    if (o.greedy) { let best = 0; counts.forEach((n, i) => { if (n > counts[best]) best = i; }); return best; }
    const u = random() * counts.reduce((a, b) => a + b, 0);
    let total = 0;
    for (let i = 0; i < V; i++) { total += counts[i]; if (total > u) return i; }
    return V - 1;
  }

  function* characters(o) {  // the text that continues o.seed, a piece at a time (charnn's generate)
    const random = rngFrom(o.rngSeed);
    const decode = textDecoder();
    let ids = symbolsOf(o.seed), length = o.length;
    reset();
    if (!ids.length && length > 0 && index.has("\n")) {
      ids = [index.get("\n")];  // read, not shown: the sample begins a line
    } else if (!ids.length && length > 0) {
      ids = [firstCharacter(o, random)];
      yield decode(ids[0]);
      length -= 1;
    } else if (!ids.length) {
      return;
    }
    for (const id of ids.slice(0, -1)) step(id);
    let current = ids[ids.length - 1];
    for (let k = 0; k < length; k++) {
      step(current);
      current = choose(o, random);
      yield decode(current);
    }
    if (bytesMode) yield decode(null);
  }

  function options(o) {
    const out = {seed: "", length: 300, temperature: 1, topK: 0, greedy: false, rngSeed: 0, ...o};
    if (!(out.length >= 0)) throw new Error("length must be >= 0");
    if (!out.greedy && !(out.temperature > 0)) throw new Error("temperature must be > 0; tick greedy for the likeliest text");
    return out;
  }

  function probs(text) {  // after each character of `text`, the next-character distribution (as charnn's Model.probabilities)
    reset();
    return symbolsOf(text).map((id) => {
      step(id);
      let max = -Infinity, total = 0;
      for (let i = 0; i < V; i++) max = Math.max(max, heap[head.out + i]);
      const p = new Array(V);
      for (let i = 0; i < V; i++) { p[i] = Math.exp(heap[head.out + i] - max); total += p[i]; }
      return p.map((v) => v / total);
    });
  }

  window.charnn = {
    model: {name: model.name, cell, num_layers: L, hidden_size: H, vocab_size: V, dtype: model.dtype},
    probs,
    generate: (o) => Array.from(characters(options(o))).join(""),  // all at once (tests, benchmarks)
    useWasm: (flag) => { matvec = flag && wasmMatvec ? wasmMatvec : matvecJS; return matvec === wasmMatvec; },
    kernel: () => matvec === wasmMatvec ? "wasm-simd" : "javascript",
  };

  // ---- the page ------------------------------------------------------------------------------------

  let running = null;
  function stop(message) {
    if (running) running.stopped = true;
    running = null;
    $("generate").disabled = false;
    $("stop").disabled = true;
    if (message !== undefined) $("status").textContent = message;
  }
  function generate() {
    stop();
    let o;
    try {
      const seedText = $("rng").value.trim();
      o = options({seed: $("seed").value, length: Number($("length").value), temperature: Number($("temperature").value),
                   topK: Number($("topk").value) || 0, greedy: $("greedy").checked,
                   rngSeed: seedText === "" ? Math.floor(Math.random() * 2 ** 32) : Number(seedText)});
      symbolsOf(o.seed);
    } catch (e) { $("status").textContent = e.message; return; }
    const out = $("output"), node = document.createTextNode("");
    out.replaceChildren(document.createTextNode(o.seed), node);
    const job = {stopped: false}, pieces = characters(o), start = performance.now();
    let made = 0;
    running = job;
    $("generate").disabled = true;
    $("stop").disabled = false;
    (function slice() {  // ~30 ms of work, then let the page draw
      if (job.stopped) return;
      const until = performance.now() + 30;
      let buffer = "";
      while (performance.now() < until) {
        const next = pieces.next();
        if (next.done) { node.appendData(buffer); stop(`${made} characters, ${rate()} chars/s (${window.charnn.kernel()})`); return; }
        buffer += next.value;
        made += 1;
      }
      node.appendData(buffer);
      $("status").textContent = `${made} characters...`;
      setTimeout(slice, 0);
    })();
    function rate() { return Math.round(made / Math.max(1e-3, (performance.now() - start) / 1000)); }
  }

  $("temperature").addEventListener("input", () => { $("temperature-value").textContent = Number($("temperature").value).toFixed(2); });
  $("greedy").addEventListener("change", () => {
    $("temperature").disabled = $("topk").disabled = $("greedy").checked;
  });
  $("generate").addEventListener("click", generate);
  $("stop").addEventListener("click", () => stop("stopped"));
  $("kernel").textContent = window.charnn.kernel();
})();
