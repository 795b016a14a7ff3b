// cnnlab's page: draw (or upload) an image, POST it to /predict?explain=1, show what came back.
// Drawings are sent as PNG files, so the server prepares them exactly like `cnnlab predict` does.
"use strict";

const $ = (id) => document.getElementById(id);
const THROTTLE_MS = 150; // at most ~7 requests a second while drawing, one in flight at a time
const INK_TO_INPUT = 2.3; // pen width in model-input pixels: MNIST strokes are 2-3 px in a 20 px box

// Read by the browser tests: drawing changes `drawn`; `answered` is the last change a reply covers.
const state = { model: null, drawn: 0, answered: 0, busy: false, epoch: 0, predictions: 0 };
window.cnnlab = state;

async function getJSON(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

function shortName(data) {
  const parts = String(data || "").replace(/\/+$/, "").split("/");
  return parts[parts.length - 1] || "?";
}

// ---- model facts --------------------------------------------------------------------------------
async function loadModel() {
  const m = await getJSON("/model");
  state.model = m;
  $("model-name").textContent = `${m.name} · ${shortName(m.data)}`;
  const acc = m.test_accuracy == null ? "not tested" : `${(100 * m.test_accuracy).toFixed(2)}% test accuracy`;
  $("model-facts").textContent = `${acc} · input ${m.input_shape.join("×")} · ${m.params.toLocaleString()} ` +
    `parameters · ${m.classes.length} classes: ${m.classes.join(", ")}`;
  $("summary").textContent = m.summary;
  const [, h, w] = m.input_shape;
  $("seen").width = w;
  $("seen").height = h;
  $("seen-hint").firstChild.textContent = `The exact ${w}×${h} input, before normalisation: the same ` +
    "preprocessing as ";
  if (m.draw) {
    $("draw-area").hidden = false;
    pen.width = Math.max(2, Math.round((pad.width / h) * INK_TO_INPUT));
    clearPad();
  } else { // photos, garments, CIFAR-10: upload a file or pick a test image
    $("input-title").textContent = "Try an image";
    document.title = `cnnlab · ${m.name}`;
    $("clear").hidden = true;
  }
  loadExamples();
}

async function loadExamples() {
  const ex = await getJSON("/examples");
  if (!ex.examples.length) return;
  $("examples-area").hidden = false;
  for (const e of ex.examples) {
    const b = document.createElement("button");
    b.type = "button";
    b.title = `a test image labelled ${e.label}`;
    const img = document.createElement("img");
    img.src = e.url;
    img.alt = e.label;
    const cap = document.createElement("span");
    cap.textContent = e.label;
    b.append(img, cap);
    b.addEventListener("click", async () => {
      const blob = await (await fetch(e.url)).blob();
      showFile(blob, `example-${e.id}.png`, e.label);
    });
    $("examples").append(b);
  }
}

// ---- drawing ------------------------------------------------------------------------------------
const pad = $("pad");
const ctx = pad.getContext("2d");
const pen = { width: 22, down: false, last: null };
let inked = false;

function clearPad() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, pad.width, pad.height);
  inked = false;
}

function padPoint(e) {
  const r = pad.getBoundingClientRect();
  return [((e.clientX - r.left) * pad.width) / r.width, ((e.clientY - r.top) * pad.height) / r.height];
}

function stroke(from, to) {
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = pen.width;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(from[0], from[1]);
  ctx.lineTo(to[0], to[1]);
  ctx.stroke();
  inked = true;
}

pad.addEventListener("pointerdown", (e) => {
  pad.setPointerCapture(e.pointerId);
  pen.down = true;
  pen.last = padPoint(e);
  stroke(pen.last, pen.last); // a tap leaves a dot
  $("truth").hidden = true;
  changed();
});
pad.addEventListener("pointermove", (e) => {
  if (!pen.down) return;
  const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
  for (const ev of events.length ? events : [e]) {
    const p = padPoint(ev);
    stroke(pen.last, p);
    pen.last = p;
  }
  changed();
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => {
    if (!pen.down) return;
    pen.down = false;
    changed();
  });
}

// ---- requests -----------------------------------------------------------------------------------
let dirty = false;
let lastSent = 0;
let timer = null;

function changed() {
  state.drawn += 1;
  dirty = true;
  pump();
}

// Send the pad when it changed, no more often than THROTTLE_MS and never two requests at once.
function pump() {
  if (state.busy || !dirty) return;
  const wait = lastSent + THROTTLE_MS - performance.now();
  if (wait > 0) {
    if (!timer) timer = setTimeout(() => { timer = null; pump(); }, wait);
    return;
  }
  dirty = false;
  if (!inked) { state.answered = state.drawn; return; }
  state.busy = true;
  lastSent = performance.now();
  const seq = state.drawn;
  const epoch = state.epoch;
  pad.toBlob(async (blob) => {
    try {
      await predict(blob, "drawing.png", epoch);
    } finally {
      state.busy = false;
      state.answered = seq;
      pump();
    }
  }, "image/png");
}

async function predict(blob, name, epoch) {
  const form = new FormData();
  form.append("file", blob, name);
  const k = Math.min(10, state.model.classes.length);
  let reply;
  try {
    const r = await fetch(`/predict?explain=1&top_k=${k}`, { method: "POST", body: form });
    reply = await r.json();
    if (!r.ok) throw new Error(reply.detail || `HTTP ${r.status}`);
  } catch (err) {
    if (epoch === state.epoch) showError(err.message);
    return;
  }
  if (epoch !== state.epoch) return; // cleared (or replaced) while the request was out
  show(reply);
}

function showFile(blob, name, truth) {
  state.epoch += 1;
  dirty = false;
  const preview = $("preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(blob);
  preview.hidden = false;
  if (state.model.draw) { // the file takes the pad's place until Clear
    clearPad();
    $("draw-area").hidden = true;
  }
  $("truth").hidden = truth == null;
  $("truth").textContent = truth == null ? "" : `true label: ${truth}`;
  predict(blob, name, state.epoch);
}

$("upload").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (file) showFile(file, file.name, null);
  e.target.value = ""; // the same file again still fires `change`
});

$("clear").addEventListener("click", () => {
  state.epoch += 1; // a reply still on its way belongs to the old drawing
  dirty = false;
  clearPad();
  $("draw-area").hidden = !state.model.draw;
  $("preview").hidden = true;
  $("truth").hidden = true;
  resetResult();
  state.answered = state.drawn;
});

// ---- results ------------------------------------------------------------------------------------
function resetResult() {
  $("pred-label").textContent = "–";
  $("pred-prob").textContent = "";
  $("bars").replaceChildren();
  $("maps").replaceChildren();
  $("error").hidden = true;
  const s = $("seen");
  s.getContext("2d").clearRect(0, 0, s.width, s.height);
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

function show(r) {
  state.predictions += 1;
  $("error").hidden = true;
  $("pred-label").textContent = r.label;
  $("pred-prob").textContent = `${(100 * r.probability).toFixed(1)}%`;
  $("bars").replaceChildren(...r.top_k.map((t, i) => barRow(t, i === 0)));
  drawInput(r.input);
  drawMaps(r.feature_maps || []);
}

function barRow(t, top) {
  const row = document.createElement("div");
  row.className = top ? "bar-row top" : "bar-row";
  const label = document.createElement("span");
  label.textContent = t.label;
  const track = document.createElement("div");
  track.className = "track";
  const fill = document.createElement("div");
  fill.className = "fill";
  fill.style.width = `${(100 * t.probability).toFixed(1)}%`;
  track.append(fill);
  const pct = document.createElement("span");
  pct.className = "pct";
  pct.textContent = `${(100 * t.probability).toFixed(1)}%`;
  row.append(label, track, pct);
  return row;
}

// `input` is (H, W) grey or (H, W, C) colour, values in [0, 1].
function drawInput(input) {
  const canvas = $("seen");
  const h = input.length;
  const w = input[0].length;
  canvas.width = w;
  canvas.height = h;
  const img = new ImageData(w, h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = input[y][x];
      const rgb = Array.isArray(v) ? v : [v, v, v];
      const o = 4 * (y * w + x);
      for (let c = 0; c < 3; c++) img.data[o + c] = Math.round(255 * rgb[c]);
      img.data[o + 3] = 255;
    }
  }
  canvas.getContext("2d").putImageData(img, 0, 0);
}

function drawMaps(maps) {
  const box = $("maps");
  while (box.children.length > maps.length) box.lastChild.remove();
  maps.forEach((m, i) => {
    let fig = box.children[i];
    if (!fig) {
      fig = document.createElement("figure");
      fig.append(document.createElement("img"), document.createElement("figcaption"));
      box.append(fig);
    }
    const img = fig.querySelector("img");
    img.onload = () => { // whole-number zoom keeps every activation a crisp square
      const zoom = Math.max(1, Math.floor(300 / Math.max(img.naturalWidth, img.naturalHeight)));
      img.style.width = `${img.naturalWidth * zoom}px`;
    };
    img.src = m.png;
    img.alt = `feature maps of ${m.layer}`;
    const more = m.channels_shown < m.shape[0] ? ` (first ${m.channels_shown})` : "";
    fig.querySelector("figcaption").textContent = `${m.layer}: ${m.shape.join("×")}${more}`;
  });
}

loadModel().catch((err) => showError(`could not load the model: ${err.message}`));
