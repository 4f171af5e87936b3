// facegen explorer: a thin client of the JSON API in app.py. No framework, nothing fetched from elsewhere.
"use strict";

const state = { runs: [], run: null, detail: null, page: 0, perPage: 16, focus: null, a: null, b: null, photo: null };
const $ = (id) => document.getElementById(id);

function say(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

const post = (path, body) => api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
const describe = (point) => (point.seed !== undefined ? `seed ${point.seed}` : "your photo");

// Views.

function show(view) {
  for (const name of ["runs", "explore"]) {
    $(`view-${name}`).hidden = name !== view;
    $(`tab-${name}`).classList.toggle("active", name === view);
  }
  if (view === "explore" && state.run) loadExplore();
}

// Runs view: the table refreshes itself, and so does the selected run's curves and preview.

async function refreshRuns() {
  try {
    state.runs = (await api("/api/runs")).runs;
  } catch (err) {
    return say(err.message, true);
  }
  const body = $("runs-table").querySelector("tbody");
  body.replaceChildren(...state.runs.map((run) => {
    const row = document.createElement("tr");
    row.dataset.id = run.id;
    row.classList.toggle("selected", run.id === state.run);
    const kid = run.kid === null ? "-" : `${run.kid.toFixed(4)}${run.kid_kind === "quick" ? " (quick)" : ""}`;
    for (const value of [run.name, run.preset || "-", run.family, run.resolution, run.steps, run.img_per_s ?? "-", kid]) {
      const cell = document.createElement("td");
      cell.textContent = value;
      row.append(cell);
    }
    const live = document.createElement("td");
    live.textContent = run.training ? "training" : "";
    live.className = "training";
    row.append(live);
    row.addEventListener("click", () => selectRun(run.id));
    return row;
  }));
  const select = $("run-select");
  const chosen = select.value;
  select.replaceChildren(...state.runs.map((run) => new Option(run.name, run.id)));
  select.value = state.run || chosen;
  if (state.run && !$("run-detail").hidden) refreshDetail();
}

async function selectRun(id) {
  state.run = id;
  state.page = 0;
  state.focus = state.a = state.b = state.photo = null;
  $("run-select").value = id;
  for (const row of $("runs-table").querySelectorAll("tbody tr")) row.classList.toggle("selected", row.dataset.id === id);
  await refreshDetail();
}

async function refreshDetail() {
  try {
    state.detail = await api(`/api/runs/${state.run}`);
  } catch (err) {
    return say(err.message, true);
  }
  const d = state.detail;
  $("run-detail").hidden = false;
  $("run-title").textContent = d.name;
  $("run-facts").textContent = `${d.family}, ${d.resolution} px, step ${d.steps}` + (d.training ? " — training now" : "") +
    `; ${d.directions.length} attribute directions` + (d.encoder ? "; has an encoder" : "");
  const bust = `?t=${Date.now()}`;
  if (d.curves) $("run-curves").src = `/api/runs/${d.id}/curves.png${bust}`;
  if (d.previews.length) {
    $("run-preview").src = `/api/runs/${d.id}/previews/${d.previews.length - 1}${bust}`;
    $("preview-caption").textContent = `latest preview: ${d.previews[d.previews.length - 1]}`;
  }
}

// Explore view: a page of faces, a focused face with one slider per direction, interpolation, a photo.

async function loadExplore() {
  if (!state.detail || state.detail.id !== state.run) await refreshDetail();
  const first = state.page * state.perPage;
  say("generating ...");
  try {
    const { faces } = await api(`/api/runs/${state.run}/faces?seeds=${first}-${first + state.perPage - 1}`);
    $("faces").replaceChildren(...faces.map((face) => {
      const figure = document.createElement("figure");
      figure.dataset.seed = face.seed;
      const img = new Image();
      img.src = face.image;
      img.className = "pixels";
      img.alt = `seed ${face.seed}`;
      const caption = document.createElement("figcaption");
      caption.textContent = face.seed;
      figure.append(img, caption);
      figure.addEventListener("click", () => focus({ seed: face.seed }, face.image));
      return figure;
    }));
    say(`seeds ${first}-${first + state.perPage - 1}`);
  } catch (err) {
    say(err.message, true);
  }
  buildSliders();
}

function buildSliders() {
  // A conditional model's attributes: one toggle each, -1 / unspecified / +1; the face keeps its latent.
  const conditions = state.detail ? state.detail.conditions || [] : [];
  $("toggles").replaceChildren(...conditions.map((name) => {
    const row = document.createElement("div");
    row.className = "slider";
    const label = document.createElement("span");
    label.textContent = name;
    const choice = document.createElement("select");
    choice.dataset.attribute = name;
    for (const [value, text] of [["", "as drawn"], ["1", "+1 present"], ["0", "0 unspecified"], ["-1", "-1 absent"]]) {
      choice.append(Object.assign(document.createElement("option"), { value, textContent: text }));
    }
    choice.addEventListener("change", scheduleEdit);
    row.append(label, choice);
    return row;
  }));
  const directions = state.detail ? state.detail.directions : [];
  $("no-directions").hidden = directions.length > 0;
  $("sliders").replaceChildren(...directions.map((d) => {
    const row = document.createElement("div");
    row.className = "slider";
    const name = document.createElement("span");
    name.textContent = d.name;
    const range = Object.assign(document.createElement("input"), { type: "range", min: -5, max: 5, step: 0.5, value: 0 });
    range.dataset.direction = d.name;
    const value = document.createElement("span");
    value.textContent = "0";
    const remove = Object.assign(document.createElement("input"), { type: "checkbox" });
    remove.dataset.remove = d.name;
    const label = document.createElement("label");
    label.append(remove, " remove");
    range.addEventListener("input", () => { value.textContent = range.value; scheduleEdit(); });
    remove.addEventListener("change", scheduleEdit);
    row.append(name, range, value, label);
    return row;
  }));
}

function focus(point, image) {
  state.focus = point;
  $("focus-panel").hidden = false;
  $("focus-label").textContent = `(${describe(point)})`;
  setImage("focus-image", image);
  for (const figure of $("faces").children) figure.classList.toggle("focused", Number(figure.dataset.seed) === point.seed);
  for (const input of $("sliders").querySelectorAll("input[type=range]")) input.value = 0;
  for (const span of $("sliders").querySelectorAll(".slider span:nth-child(3)")) span.textContent = "0";
  for (const box of $("sliders").querySelectorAll("input[type=checkbox]")) box.checked = false;
  for (const choice of $("toggles").querySelectorAll("select")) choice.value = "";
}

function setImage(id, url) {
  $(id).src = url;
  if (id === "focus-image") $("focus-download").href = url;
}

let editTimer = null;
let editCounter = 0;
function scheduleEdit() {  // one request per pause of the slider, and only the newest answer is shown
  clearTimeout(editTimer);
  editTimer = setTimeout(runEdit, 60);
}

async function runEdit() {
  if (!state.focus) return;
  const add = {};
  for (const input of $("sliders").querySelectorAll("input[type=range]")) {
    if (Number(input.value) !== 0) add[input.dataset.direction] = Number(input.value);
  }
  const remove = [...$("sliders").querySelectorAll("input[type=checkbox]:checked")].map((box) => box.dataset.remove);
  const labels = {};
  for (const choice of $("toggles").querySelectorAll("select")) {
    if (choice.value !== "") labels[choice.dataset.attribute] = Number(choice.value);
  }
  const mine = ++editCounter;
  try {
    const { image } = await post(`/api/runs/${state.run}/edit`, { face: state.focus, add, remove, set: labels });
    if (mine === editCounter) setImage("focus-image", image);
    const edited = Object.keys(add).length || remove.length || Object.keys(labels).length;
    say(edited ? `edited ${describe(state.focus)}` : describe(state.focus));
  } catch (err) {
    say(err.message, true);
  }
}

function mark(which) {
  if (!state.focus) return say("click a face first", true);
  state[which] = state.focus;
  $(`point-${which}`).textContent = describe(state.focus);
}

async function interpolate() {
  if (!state.a || !state.b) return say("mark two faces as A and B first", true);
  try {
    const { frames } = await post(`/api/runs/${state.run}/interpolate`,
      { a: state.a, b: state.b, steps: Number($("interp-steps").value), slerp: $("interp-slerp").checked });
    $("strip").replaceChildren(...frames.map((url, i) => Object.assign(new Image(), { src: url, className: "pixels", alt: `frame ${i}` })));
    say(`${frames.length} frames from ${describe(state.a)} to ${describe(state.b)}`);
  } catch (err) {
    say(err.message, true);
  }
}

async function uploadPhoto() {
  const file = $("photo-input").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  say("finding the photo's latent ...");
  try {
    const result = await api(`/api/runs/${state.run}/photo`, { method: "POST", body: form });
    state.photo = result;
    $("photo-result").hidden = false;
    $("photo-original").src = result.original;
    $("photo-reconstruction").src = result.reconstruction;
    $("photo-caption").textContent = `${result.method}: PSNR ${result.psnr.toFixed(2)} dB, ${result.seconds} s`;
    say(`photo found by ${result.method}`);
  } catch (err) {
    say(err.message, true);
  }
}

// Wiring.

for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => show(tab.dataset.view));
$("explore-this").addEventListener("click", () => show("explore"));
$("run-select").addEventListener("change", async () => { await selectRun($("run-select").value); loadExplore(); });
$("prev-page").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); loadExplore(); });
$("next-page").addEventListener("click", () => { state.page += 1; loadExplore(); });
$("random-page").addEventListener("click", () => { state.page = Math.floor(Math.random() * 10000); loadExplore(); });
$("go-seed").addEventListener("click", () => { state.page = Math.floor(Math.max(0, Number($("seed-input").value)) / state.perPage); loadExplore(); });
$("mark-a").addEventListener("click", () => mark("a"));
$("mark-b").addEventListener("click", () => mark("b"));
$("interpolate").addEventListener("click", interpolate);
$("photo-input").addEventListener("change", uploadPhoto);
$("photo-focus").addEventListener("click", () => state.photo && focus({ photo: state.photo.token }, state.photo.reconstruction));

refreshRuns().then(() => { if (state.runs.length && !state.run) selectRun(state.runs[0].id); });
setInterval(refreshRuns, 5000);
