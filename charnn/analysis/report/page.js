// charnn report: colours the text views from the numbers embedded in the page as JSON
// (#report-data), and shows the five likeliest next characters on hover. Inlined into every report.
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const n = data.chars.length, H = data.units_per_layer;
  let unitValues;
  if (data.units.encoding === "float") {
    unitValues = (l, u) => data.units.values[l][u];
  } else {  // one byte per value: v = q / 127.5 - 1
    const raw = atob(data.units.values), bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    unitValues = (l, u) => {
      const out = new Float32Array(n), offset = (l * H + u) * n;
      for (let i = 0; i < n; i++) out[i] = bytes[offset + i] / 127.5 - 1;
      return out;
    };
  }
  const visible = (ch) => ch === "\n" ? "\u21b5" : ch === " " ? "\u2423" : ch === "\t" ? "\u21e5" : ch;
  const diverging = (v) => {  // -1 blue, 0 white, +1 red, never darker than the text needs to stay readable
    const a = Math.min(1, Math.abs(v));
    return `hsl(${v >= 0 ? 0 : 215}, 80%, ${(100 - 38 * a).toFixed(1)}%)`;
  };
  function build(id, count) {
    const box = document.getElementById(id), frag = document.createDocumentFragment();
    for (let i = 0; i < count; i++) {
      const s = document.createElement("span");
      s.textContent = data.chars[i] === "\n" ? "\u21b5\n" : data.chars[i];
      s.dataset.i = i;
      frag.appendChild(s);
    }
    box.appendChild(frag);
    return box.children;
  }
  function paint(spans, l, u) {
    const v = unitValues(l, u);
    for (let i = 0; i < spans.length; i++) spans[i].style.background = diverging(v[i]);
  }
  const unitSpans = build("unit-text", n);
  const layerSel = document.getElementById("layer"), unitInput = document.getElementById("unit");
  const label = document.getElementById("unit-label");
  function choose(l, u) {
    layerSel.value = String(l); unitInput.value = String(u); update();
  }
  function update() {
    const l = Math.max(0, Math.min(data.layers - 1, parseInt(layerSel.value, 10) || 0));
    const u = Math.max(0, Math.min(H - 1, parseInt(unitInput.value, 10) || 0));
    paint(unitSpans, l, u);
    const pick = data.picked.find((p) => p.layer === l && p.unit === u);
    label.textContent = `layer ${l}, unit ${u}` + (pick ? `: follows "${pick.property}" (correlation ${pick.correlation.toFixed(3)})` : "");
  }
  layerSel.addEventListener("change", update);
  unitInput.addEventListener("input", update);
  const picks = document.getElementById("picked");
  data.picked.forEach((p) => {
    const b = document.createElement("button");
    b.textContent = `${p.property}: layer ${p.layer} unit ${p.unit} (r = ${p.correlation.toFixed(2)})`;
    b.addEventListener("click", () => choose(p.layer, p.unit));
    picks.appendChild(b);
  });
  data.shown.forEach((p, k) => {
    const spans = build(`shown-${k}`, Math.min(n, 600));
    paint(spans, p.layer, p.unit);
  });
  const surprisal = build("surprisal-text", n);
  const top = Math.max(...data.surprisal.filter((s) => s !== null), 1e-9);
  for (let i = 0; i < n; i++) {
    const s = data.surprisal[i];
    const c = s === null ? 255 : Math.round(255 * (1 - Math.min(1, s / top)));
    surprisal[i].style.background = `rgb(255,${c},${c})`;
    if (s !== null) surprisal[i].title = `-ln p = ${s.toFixed(3)} nats`;
  }
  const box = document.getElementById("top5");
  function show(event) {
    const i = event.target.dataset ? event.target.dataset.i : undefined;
    if (i === undefined) { box.style.display = "none"; return; }
    box.replaceChildren();
    const head = document.createElement("div");
    head.textContent = `after ${JSON.stringify(data.chars[i])}, next:`;
    box.appendChild(head);
    data.top[i].forEach(([ch, p]) => {
      const row = document.createElement("div");
      row.className = "top5-row";
      row.textContent = `${visible(ch)}  ${p.toFixed(3)}`;
      box.appendChild(row);
    });
    box.style.left = (event.clientX + 12) + "px";
    box.style.top = (event.clientY + 12) + "px";
    box.style.display = "block";
  }
  for (const id of ["unit-text", "surprisal-text"]) {
    const el = document.getElementById(id);
    el.addEventListener("mouseover", show);
    el.addEventListener("click", show);
    el.addEventListener("mouseleave", () => { box.style.display = "none"; });
  }
  const first = data.picked[0] || {layer: 0, unit: 0};
  choose(first.layer, first.unit);
})();
