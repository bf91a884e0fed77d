// trail web: the list of trails and a run's page. Plain JS, no framework, nothing from a CDN.
// Everything a step says is put in the page as text (textContent), never as HTML.
"use strict";

const TOKEN = document.querySelector('meta[name="trail-token"]').content;
const ACTIVE = new Set(["Running", "Waiting"]);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "onclick") node.addEventListener("click", value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}

function shown(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

async function api(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = Object.assign({ "X-Trail-Token": TOKEN }, opts.headers || {});
  const response = await fetch(path, opts);
  let data;
  try { data = await response.json(); } catch (e) { data = { error: response.statusText }; }
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function events(query) {
  const sep = query ? "&" : "?";
  return new EventSource("/api/events" + query + sep + "token=" + encodeURIComponent(TOKEN));
}

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : "";
}

function duration(seconds) {
  if (seconds === null || seconds === undefined || seconds < 0) return "";
  const s = Math.floor(seconds);
  if (s < 60) return (seconds < 10 ? seconds.toFixed(1) : s) + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + " m " + (s % 60) + " s";
  return Math.floor(m / 60) + " h " + (m % 60) + " m";
}

function countBadges(counts) {
  const box = el("span", { class: "counts" });
  for (const [state, count] of Object.entries(counts || {})) {
    box.append(el("span", { class: "count", "data-state": state, text: count + " " + state }));
  }
  return box;
}

function toast(text, bad) {
  const box = document.getElementById("toast");
  box.textContent = text;
  box.className = bad ? "show bad" : "show";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.className = ""; }, 4000);
}

// --- the list of trails -----------------------------------------------------------------

function indexPage() {
  const body = document.querySelector("#trails tbody");
  const past = document.querySelector("#past tbody");
  const loadPast = async () => {
    const data = await api("/api/trails");
    past.replaceChildren(...data.past.map((run) => el("tr", { "data-run": run.id },
      el("td", {}, el("a", { href: "/runs/" + run.id, text: "#" + run.id })),
      el("td", { text: run.name }), el("td", { text: when(run.started) }),
      el("td", { text: when(run.ended) }), el("td", { text: run.outcome || (run.ended ? "" : "open") }),
      el("td", {}, countBadges(run.counts)))));
  };
  const stream = events("");
  stream.onmessage = (message) => {
    const data = JSON.parse(message.data);
    if (data.type !== "trails") return;
    body.replaceChildren(...data.trails.map((trail) => el("tr", { "data-run": trail.key, "data-live": trail.live },
      el("td", {}, el("a", { href: "/runs/" + encodeURIComponent(trail.key), text: trail.run ? "#" + trail.run : trail.key })),
      el("td", { text: trail.name }),
      el("td", {}, el("span", { class: "badge " + (trail.live ? "live" : "ended"), text: trail.live ? "live, pid " + trail.pid : "ended" })),
      el("td", {}, countBadges(trail.counts)), el("td", { class: "muted", text: trail.socket }))));
    document.getElementById("no-trails").hidden = data.trails.length > 0;
    if (!loadPast.timer) {  // the journal is read at most every two seconds
      loadPast.timer = setTimeout(() => {
        loadPast.timer = null;
        loadPast().catch((e) => toast(e.message, true));
      }, loadPast.done ? 2000 : 0);
      loadPast.done = true;
    }
  };
}

// --- a run's page -----------------------------------------------------------------------

const run = {
  key: decodeURIComponent(location.pathname.split("/").pop()),
  rows: new Map(), calls: [], selected: null, live: false, stream: null, journalRun: null,
};

function spec(name) { return run.calls.find((c) => c.name === name); }

const rowElements = new Map();  // n -> the table's row; n -> the diagram's node
const nodeElements = new Map();

function rowElement(n) {
  return rowElements.get(n);
}

function elapsedOf(row) {
  const start = row["Started at"];
  if (!start) return "";
  const end = row["Finished at"] || (row.State === "Running" ? Date.now() / 1000 : null);
  return end ? duration(end - start) : "";
}

function drawRow(row) {
  let tr = rowElement(row.n);
  if (!tr) {
    tr = el("tr", { "data-n": row.n, tabindex: 0 });
    tr.addEventListener("click", () => select(row.n));
    for (const cls of ["n", "name", "state", "elapsed", "attempts"]) tr.append(el("td", { class: cls }));
    tr.append(el("td", { class: "last" }, el("div")));  // one line; the whole of it on hover
    document.querySelector("#steps tbody").append(tr);
    rowElements.set(row.n, tr);
  }
  tr.setAttribute("data-step", row.Name);
  tr.setAttribute("data-state", row.State);
  tr.classList.toggle("selected", run.selected === row.n);
  const cells = tr.children;
  cells[0].textContent = row.n;
  cells[1].textContent = row.Name;
  cells[2].textContent = row.State;
  cells[3].textContent = elapsedOf(row);
  cells[4].textContent = row.Attempt || "";
  cells[5].firstChild.textContent = row.last || "";
  cells[5].title = row.last || "";
  const node = nodeElements.get(row.n);
  if (node) node.setAttribute("data-state", row.State);
}

function drawHeader(data) {
  if (data.name) {
    document.getElementById("title").textContent = data.name + (data.run ? "  #" + data.run : "");
    document.title = "trail web: " + data.name;
  }
  const badge = document.getElementById("live");
  badge.textContent = run.live ? "live" : (data.history ? "past run" : "ended: its server is gone");
  badge.className = "badge " + (run.live ? "live" : "ended");
  document.body.classList.toggle("ended", !run.live);
  const counts = {};
  for (const row of run.rows.values()) counts[row.State] = (counts[row.State] || 0) + 1;
  document.getElementById("counts").replaceChildren(countBadges(counts));
}

function tick() {
  let first = null;
  let last = null;
  let running = false;
  for (const row of run.rows.values()) {
    if (row["Started at"] && (first === null || row["Started at"] < first)) first = row["Started at"];
    if (row["Finished at"] && (last === null || row["Finished at"] > last)) last = row["Finished at"];
    if (ACTIVE.has(row.State)) running = true;
    if (row.State === "Running") rowElement(row.n).children[3].textContent = elapsedOf(row);
  }
  const end = run.live && running ? Date.now() / 1000 : last;
  document.getElementById("elapsed").textContent = first && end ? "elapsed " + duration(end - first) : "";
}

function drawQuestions() {
  const box = document.getElementById("questions");
  const waiting = [...run.rows.values()].filter((row) => row.question !== null && row.question !== undefined);
  const keep = new Map([...box.querySelectorAll("[data-question-for]")].map((q) => [q.getAttribute("data-question-for"), q]));
  box.replaceChildren(...waiting.map((row) => {
    const old = keep.get(row.Name);
    if (old && old.getAttribute("data-question") === shown(row.question)) return old;  // keep what is typed
    const field = el("input", { type: "text", "data-answer-for": row.Name, placeholder: "your answer", "aria-label": "answer for " + row.Name });
    const send = (value) => steer("send_message_to_steps", { n: row.n }, { message: value });
    field.addEventListener("keydown", (e) => { if (e.key === "Enter") send(field.value); });
    return el("div", { class: "question", "data-question-for": row.Name, "data-question": shown(row.question) },
      el("strong", { text: row.n + ": " + row.Name + " asks" }),
      el("p", { class: "asked", text: shown(row.question) }),
      field,
      el("button", { type: "button", "data-action": "send_message_to_steps", onclick: () => send(field.value), text: "Answer" }),
      el("button", { type: "button", "data-reply": "true", onclick: () => send("true"), text: "Done" }),
      el("button", { type: "button", "data-reply": "false", onclick: () => send("false"), text: "Not done" }));
  }));
}

function argumentFields(call) {
  return call.arguments.map((arg) => el("input", {
    type: "text", "data-arg": arg.name, "data-for": call.name, size: 8,
    placeholder: arg.cli.replace(/^--/, "").toLowerCase() + (arg.required ? "" : " (" + shown(arg.default) + ")"),
    title: arg.help,
  }));
}

function argumentsOf(container, call) {
  const args = {};
  for (const field of container.querySelectorAll('[data-for="' + call.name + '"]')) {
    if (field.value !== "") args[field.getAttribute("data-arg")] = field.value;
  }
  return args;
}

function callControls(calls, tags) {
  const box = el("span", { class: "calls" });
  for (const call of calls) {
    const group = el("span", { class: "call" });
    group.append(...argumentFields(call));
    group.append(el("button", {
      type: "button", "data-action": call.name, title: call.summary, text: call.command,
      onclick: () => steer(call.name, tags, argumentsOf(group, call)),
    }));
    box.append(group);
  }
  return box;
}

function drawTrailActions() {
  const box = document.getElementById("trail-actions");
  if (!run.live) { box.replaceChildren(); return; }
  const calls = run.calls.filter((c) => c.mutating && (!c.selects || c.whole_trail));
  box.replaceChildren(el("span", { class: "label", text: "Whole trail:" }), callControls(calls, {}));
}

function select(n) {
  run.selected = n;
  for (const tr of document.querySelectorAll("#steps tbody tr")) tr.classList.toggle("selected", tr.getAttribute("data-n") === String(n));
  drawStepPanel();
}

function drawStepPanel() {
  const panel = document.getElementById("step-panel");
  const row = run.rows.get(run.selected);
  if (!row) { panel.hidden = true; return; }
  panel.hidden = false;
  panel.setAttribute("data-step", row.Name);
  panel.setAttribute("data-state", row.State);
  document.getElementById("step-title").textContent = row.n + ": " + row.Name + " (" + row.State + ")";
  const actions = document.getElementById("step-actions");
  if (run.live && actions.getAttribute("data-for-step") !== String(row.n)) {
    const calls = run.calls.filter((c) => c.mutating && c.selects && !c.whole_trail);
    actions.replaceChildren(callControls(calls, { n: row.n }));
    actions.setAttribute("data-for-step", row.n);
  } else if (!run.live) {
    actions.replaceChildren();
    actions.removeAttribute("data-for-step");
  }
  const output = document.getElementById("step-output");
  output.textContent = (row["Output messages"] || []).map(shown).join("\n");
  if (row["Return value"] !== null && row["Return value"] !== undefined) {
    output.textContent += (output.textContent ? "\n" : "") + "→ " + shown(row["Return value"]);
  }
}

function drawAll(data) {
  run.calls = data.calls || [];
  run.live = !!data.live;
  run.journalRun = data.journal_run;
  document.getElementById("diagram").innerHTML = data.svg;  // drawn by graphviz on the server
  nodeElements.clear();
  for (const node of document.querySelectorAll("#diagram g.node[data-n]")) {
    node.addEventListener("click", () => select(Number(node.getAttribute("data-n"))));
    nodeElements.set(Number(node.getAttribute("data-n")), node);
  }
  document.querySelector("#steps tbody").replaceChildren();
  rowElements.clear();
  run.rows = new Map(data.rows.map((row) => [row.n, row]));
  for (const row of run.rows.values()) drawRow(row);
  drawHeader(data);
  drawTrailActions();
  drawQuestions();
  drawStepPanel();
  if (run.journalRun !== null && run.journalRun !== undefined) loadTimeline();
}

function onEvent(message) {
  const data = JSON.parse(message.data);
  if (data.type === "snapshot") { drawAll(data); return; }
  if (data.type === "resync") { connect(); return; }
  if (data.type === "ended") {
    run.live = false;
    run.stream.close();
    drawHeader({});
    drawTrailActions();
    drawQuestions();
    drawStepPanel();
    if (run.journalRun !== null && run.journalRun !== undefined) loadTimeline();
    awaitTakeUp();
    return;
  }
  if (data.event && data.event.kind !== "output") laterTimeline();
  if (data.row) {
    run.rows.set(data.row.n, data.row);
    drawRow(data.row);
    drawHeader({});
    if (data.event.kind !== "output" || data.row.question) drawQuestions();
    else if (document.querySelector('[data-question-for="' + CSS.escape(data.row.Name) + '"]')) drawQuestions();
    if (data.row.n === run.selected) drawStepPanel();
  }
}

// A run taken up again (its server restarted on the same journal) comes back to life here:
// the list of trails says when it is live again, and the page follows it once more.
function awaitTakeUp() {
  const list = events("");
  list.onmessage = (message) => {
    const data = JSON.parse(message.data);
    if (data.type === "trails" && data.trails.some((t) => t.key === run.key && t.live)) {
      list.close();
      connect();
    }
  };
}

function connect() {
  if (run.stream) run.stream.close();
  run.stream = events("?run=" + encodeURIComponent(run.key));
  run.stream.onmessage = onEvent;
}

function laterTimeline() {  // at most one journal read a second, however busy the run
  if (run.journalRun === null || run.journalRun === undefined || laterTimeline.timer) return;
  laterTimeline.timer = setTimeout(() => { laterTimeline.timer = null; loadTimeline(); }, 1000);
}

async function loadTimeline() {
  const section = document.getElementById("timeline-section");
  try {
    const data = await api("/api/runs/" + encodeURIComponent(run.journalRun) + "/timeline");
    section.hidden = false;
    document.querySelector("#timeline tbody").replaceChildren(...data.timeline.map((entry) => {
      const what = entry.kind === "state" ? entry.old + " → " + entry.new : entry.kind;
      const detail = entry.kind === "state" ? "" : shown(entry.message);
      return el("tr", { "data-kind": entry.kind, "data-state": entry.kind === "state" ? entry.new : null },
        el("td", { text: when(entry.time) }), el("td", { text: entry.n }), el("td", { text: entry.name }),
        el("td", { text: what }), el("td", { class: "detail", text: detail }), el("td", { text: entry.cause || "" }));
    }));
  } catch (e) {
    toast("timeline: " + e.message, true);
  }
}

// Every change goes through its dry run first, and happens only on confirm.
async function steer(name, tags, args) {
  const call = spec(name);
  const url = "/api/runs/" + encodeURIComponent(run.key) + "/calls/" + name;
  const post = (dryRun) => api(url, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ tags: tags, args: args, dry_run: dryRun }),
  });
  let preview;
  try { preview = await post(true); } catch (e) { toast(call.command + ": " + e.message, true); return; }
  const dialog = document.getElementById("confirm");
  const target = tags.n !== undefined ? " " + tags.n + ": " + (run.rows.get(tags.n) || {}).Name : " (whole trail)";
  document.getElementById("confirm-title").textContent = call.command + target;
  const list = document.getElementById("confirm-steps");
  const confirm = dialog.querySelector("[data-confirm]");
  let text;
  if (preview.shape === "steps") {
    const steps = preview.result || [];
    text = steps.length ? call.summary + " These steps would change:" : "No step would change: none is in a state this allows.";
    list.replaceChildren(...steps.map((s) => el("li", { "data-step": s.name, text: s.n + ": " + s.name })));
    confirm.disabled = steps.length === 0;
  } else {
    text = call.summary + (preview.result ? "" : " (it would do nothing now)");
    list.replaceChildren();
    confirm.disabled = false;
  }
  if (args && Object.keys(args).length) text += " With " + JSON.stringify(args) + ".";
  const stranded = preview.stranded || [];
  document.getElementById("confirm-stranded-text").hidden = stranded.length === 0;
  document.getElementById("confirm-stranded").replaceChildren(...stranded.map(
    (s) => el("li", { "data-stranded": s.name, text: s.n + ": " + s.name })));
  document.getElementById("confirm-text").textContent = text;
  dialog.setAttribute("data-call", name);
  const close = () => { dialog.close(); confirm.onclick = null; };
  dialog.querySelector("[data-cancel]").onclick = close;
  confirm.onclick = async () => {
    close();
    try {
      const done = await post(false);
      const count = Array.isArray(done.result) ? done.result.length + " step(s)" : "done";
      toast(call.command + ": " + count);
    } catch (e) { toast(call.command + ": " + e.message, true); }
  };
  dialog.showModal();
}

async function runPage() {
  document.getElementById("timeline-refresh").addEventListener("click", loadTimeline);
  setInterval(tick, 1000);
  try {
    const data = await api("/api/runs/" + encodeURIComponent(run.key) + "?followed=1");
    if (data.followed) connect(); else drawAll(data);  // a live run, or one from the journal
  } catch (e) {
    const box = document.getElementById("error");
    box.textContent = e.message;
    box.hidden = false;
  }
}

if (document.body.dataset.page === "index") indexPage(); else runPage();
