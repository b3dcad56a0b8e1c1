// The page: uploads, conversion options, the job queue (server-sent events), the gallery, and the
// viewer (viewer.js). Everything it asks the server for is a path inside a served folder.
"use strict";

const $ = selector => document.querySelector(selector);
const state = { root: null, path: "", selection: [], settings: null, view: null };

function fileUrl(kind, address) {
  return `/${kind}/${encodeURIComponent(address.root)}/${address.path.split("/").map(encodeURIComponent).join("/")}`;
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function say(text) { $("#message").textContent = text || ""; }

function options() {
  const chosen = {};
  for (const name of ["preset", "format"]) if ($("#" + name).value) chosen[name] = $("#" + name).value;
  for (const name of ["divergence", "convergence"]) if ($("#" + name).value !== "") chosen[name] = Number($("#" + name).value);
  return chosen;
}

// --- uploads --------------------------------------------------------------------------------------

async function filesOfEntry(entry, prefix = "") {
  if (entry.isFile) return [await new Promise((done, fail) => entry.file(file => done([prefix + file.name, file]), fail))];
  const reader = entry.createReader(), found = [];
  for (;;) {
    const batch = await new Promise((done, fail) => reader.readEntries(done, fail));
    if (!batch.length) return found;
    for (const child of batch) found.push(...await filesOfEntry(child, prefix + entry.name + "/"));
  }
}

async function uploadAll(named) {  // [[relative name, File], ...]
  const batch = Array.from(crypto.getRandomValues(new Uint8Array(8)), b => b.toString(16).padStart(2, "0")).join("");
  const added = [];
  say("");
  for (const [index, [name, file]] of named.entries()) {
    $("#upload-progress").textContent = `uploading ${index + 1}/${named.length}: ${name}`;
    try {
      added.push(await api(`/api/upload?batch=${batch}&name=${encodeURIComponent(name)}`, { method: "PUT", body: file }));
    } catch (error) { say(`${name}: ${error.message}`); }
  }
  $("#upload-progress").textContent = added.length ? `uploaded ${added.length} file(s)` : "";
  setSelection(added);
  if (state.root === "uploads") openFolder("uploads", state.path);
}

function setSelection(addresses) {
  state.selection = addresses;
  $("#selection").textContent = addresses.length ? addresses.map(a => a.path.split("/").pop()).join(", ") : "nothing";
  document.querySelectorAll(".tile input").forEach(box => {
    box.checked = addresses.some(a => a.root === box.dataset.root && a.path === box.dataset.path);
  });
}

function setupDrop() {
  const drop = $("#drop");
  drop.addEventListener("dragover", event => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async event => {
    event.preventDefault();
    drop.classList.remove("over");
    const entries = [...event.dataTransfer.items].map(item => item.webkitGetAsEntry && item.webkitGetAsEntry()).filter(Boolean);
    const named = entries.length ? (await Promise.all(entries.map(entry => filesOfEntry(entry)))).flat()
      : [...event.dataTransfer.files].map(file => [file.name, file]);
    uploadAll(named);
  });
  for (const id of ["#files", "#folder"])
    $(id).addEventListener("change", event => uploadAll([...event.target.files].map(file => [file.webkitRelativePath || file.name, file])));
}

// --- jobs -----------------------------------------------------------------------------------------

function showJobs(jobs) {
  const list = $("#jobs");
  list.replaceChildren(...jobs.slice().reverse().map(job => {
    const item = document.createElement("li");
    item.dataset.id = job.id;
    item.dataset.status = job.status;
    const names = job.inputs.map(input => input.path.split("/").pop() || input.root).join(", ");
    item.innerHTML = `<b></b> — <span class="job-status"></span> <progress max="1"></progress> <span class="links"></span> `;
    item.querySelector("b").textContent = names;
    item.querySelector(".job-status").textContent = job.status + (job.message ? `: ${job.message}` : "");
    const bar = item.querySelector("progress");
    if (job.status === "running") { if (job.total) bar.value = job.done / job.total; else bar.removeAttribute("value"); }
    else bar.value = job.status === "done" ? 1 : 0;
    for (const output of job.outputs) {
      const link = document.createElement("a");
      link.textContent = output.path.split("/").pop();
      link.className = "output";
      link.onclick = () => openFolder(output.root, output.path.split("/").slice(0, -1).join("/")).then(() => openViewer(output));
      item.querySelector(".links").append(link, " ");
    }
    const action = document.createElement("button");
    const active = job.status === "queued" || job.status === "running";
    action.textContent = active ? "Cancel" : "Remove";
    action.onclick = () => api(`/api/jobs/${job.id}${active ? "/cancel" : ""}`, { method: active ? "POST" : "DELETE" })
      .catch(error => say(error.message));
    item.append(action);
    return item;
  }));
  if (state.root === "converted") openFolder(state.root, state.path);
}

function watchJobs() {  // reconnects by itself when the server ends a stream
  const events = new EventSource("/api/events");
  events.addEventListener("jobs", event => showJobs(JSON.parse(event.data)));
  events.onerror = () => { $("#status").textContent = "reconnecting…"; };
  events.onopen = () => { $("#status").textContent = ""; };
}

async function convert() {
  if (!state.selection.length) return say("select something first: drop files, or tick them in the gallery");
  try {
    await api("/api/jobs", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ inputs: state.selection, options: options() }) });
    say("");
  } catch (error) { say(error.message); }
}

async function preview() {
  const first = state.selection[0];
  if (!first) return say("select a photo or video first");
  say("making a preview…");
  try {
    const made = await api("/api/preview", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ input: first, options: options() }) });
    say(`preview made in ${made.seconds} s`);
    openViewer(made, made.layout, `preview of ${first.path.split("/").pop()}`);
  } catch (error) { say(error.message); }
}

// --- gallery --------------------------------------------------------------------------------------

async function openFolder(root, path = "") {
  const listing = await api(`/api/list?root=${encodeURIComponent(root)}&path=${encodeURIComponent(path)}`);
  state.root = root;
  state.path = path;
  state.files = listing.files;
  document.querySelectorAll("#roots button").forEach(b => b.classList.toggle("active", b.dataset.root === root));
  const crumbs = $("#crumbs");
  crumbs.replaceChildren();
  const parts = path ? path.split("/") : [];
  [root, ...parts].forEach((part, index) => {
    const link = document.createElement("a");
    link.textContent = part;
    link.onclick = () => openFolder(root, parts.slice(0, index).join("/"));
    crumbs.append(index ? " / " : "", link);
  });
  const tiles = listing.folders.map(folder => {
    const tile = document.createElement("div");
    tile.className = "tile";
    tile.innerHTML = `<div class="folder">📁</div><div class="name"></div><input type="checkbox" title="select the folder">`;
    tile.querySelector(".name").textContent = folder.name;
    tile.querySelector(".folder").onclick = () => openFolder(root, folder.path);
    selectable(tile.querySelector("input"), { root, path: folder.path });
    return tile;
  }).concat(listing.files.map(file => {
    const tile = document.createElement("div");
    tile.className = "tile";
    tile.innerHTML = `<img loading="lazy" alt=""><span class="badge"></span><div class="name"></div><input type="checkbox">`;
    const address = { root, path: file.path };
    tile.querySelector("img").src = fileUrl("thumbs", address);
    tile.querySelector("img").onclick = () => openViewer(address, file.layout);
    tile.querySelector(".badge").textContent = `${file.kind === "video" ? "▶ " : ""}${file.layout || "2D"}`;
    tile.querySelector(".name").textContent = file.name;
    selectable(tile.querySelector("input"), address);
    return tile;
  }));
  $("#grid").replaceChildren(...tiles);
}

function selectable(box, address) {
  box.dataset.root = address.root;
  box.dataset.path = address.path;
  box.checked = state.selection.some(a => a.root === address.root && a.path === address.path);
  box.onchange = () => setSelection(box.checked ? [...state.selection, address]
    : state.selection.filter(a => !(a.root === address.root && a.path === address.path)));
}

// --- viewer ---------------------------------------------------------------------------------------

function openViewer(address, layout, title) {
  if (layout === undefined) layout = (state.files || []).find(f => f.path === address.path)?.layout ?? "2d";
  const isVideo = /\.(mp4|m4v|mov|mkv|webm)$/i.test(address.path);
  // Stereo MPO and HEIC photos: the server lays their two images side by side.
  const url = layout === "pair" ? fileUrl("eyes", address) : fileUrl("files", address);
  layout = layout === "pair" ? "sbs" : layout || "2d";
  $("#viewer").hidden = false;
  $("#viewer-title").textContent = title || address.path.split("/").pop();
  $("#layout").value = layout;
  $("#video-controls").hidden = !isVideo;
  if (state.media instanceof HTMLVideoElement) state.media.pause();
  const media = document.createElement(isVideo ? "video" : "img");
  state.media = media;
  const ready = () => { state.view.show(media, $("#layout").value); document.body.dataset.viewing = address.path; };
  if (isVideo) {
    Object.assign(media, { loop: true, muted: true, playsInline: true, preload: "auto" });
    media.addEventListener("loadeddata", ready, { once: true });
    media.addEventListener("timeupdate", () => { $("#seek").value = media.currentTime / (media.duration || 1); });
  } else media.addEventListener("load", ready, { once: true });
  media.src = url;
}

function setMode(mode) {
  state.view.mode = mode;
  document.querySelectorAll("[data-mode]").forEach(b => b.classList.toggle("active", b.dataset.mode === mode));
  $("#split-label").hidden = mode !== "slider";
  document.body.dataset.mode = mode;
  state.view.draw();
}

async function setupViewer() {
  state.view = new Viewer.StereoView($("#canvas"));
  document.querySelectorAll("[data-mode]").forEach(button => button.onclick = () => setMode(button.dataset.mode));
  setMode("anaglyph");
  $("#layout").onchange = () => state.media && state.view.show(state.media, $("#layout").value);
  $("#split").oninput = event => { state.view.split = Number(event.target.value); state.view.draw(); };
  $("#close-viewer").onclick = () => {
    $("#viewer").hidden = true;
    if (state.media instanceof HTMLVideoElement) state.media.pause();
    if (state.view.xr) state.view.xr.end();
  };
  $("#play").onclick = () => { const video = state.media; video.paused ? video.play() : video.pause(); };
  $("#seek").oninput = event => { const video = state.media; video.currentTime = Number(event.target.value) * (video.duration || 0); };
  const screen = () => { state.view.screen = { width: Number($("#vr-width").value), distance: Number($("#vr-distance").value) }; };
  $("#vr-width").oninput = $("#vr-distance").oninput = screen;
  if (await Viewer.StereoView.vrSupported()) {
    $("#enter-vr").hidden = false;
    $("#enter-vr").onclick = () => {
      screen();
      if (state.media instanceof HTMLVideoElement) state.media.play();
      state.view.enterVR().catch(error => say(`VR: ${error.message}`));
    };
  }
}

// --- start ----------------------------------------------------------------------------------------

async function start() {
  state.settings = await api("/api/settings");
  for (const preset of state.settings.presets) $("#preset").add(new Option(preset, preset));
  for (const format of state.settings.formats) $("#format").add(new Option(format, format));
  const roots = $("#roots");
  for (const root of state.settings.roots) {
    const button = document.createElement("button");
    button.textContent = root.name;
    button.dataset.root = root.name;
    button.onclick = () => openFolder(root.name);
    roots.append(button);
  }
  setupDrop();
  $("#convert-button").onclick = convert;
  $("#preview-button").onclick = preview;
  await setupViewer();
  watchJobs();
  await openFolder(state.settings.roots[0].name);
  document.body.dataset.ready = "yes";
}

start().catch(error => say(error.message));
