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
  tags: {},  // n -> the step's tags (a live run's)
  view: { filter: "", by: "name", expanded: new Set() },  // the grouped view's choices
  due: null, drawMs: 0, drawnAt: 0,  // a grouped view's next draw, the last one's cost and time
  groupKeys: new Map(),  // n -> its group under run.view.by
};

// A run of more steps than this is shown grouped (as the live view does, trail.layer2.groups):
// first the steps that need you (a question, a failure), then those running, then a line
// per group (the name before "@", or a tag) with its counts by state, the steps done only
// counted. Every list shows at most SHOW rows; the filter finds any step. Events are applied
// as they come and drawn together, at most every DRAW_EVERY ms or four times a draw's cost:
// 10,000 steps never mean 10,000 rows in the page.
const GROUP_ABOVE = 200;
const SHOW = 50;
const DRAW_EVERY = 50;
const FAILURES = new Set(["Failed", "Paused due to failure"]);
const DONE = new Set(["Succeeded", "Skipped"]);
const ORDER = ["Paused due to failure", "Failed", "Running", "Interrupted", "Blocked", "Paused",
  "To Pause", "To Block", "To Skip", "Waiting", "Ready", "Succeeded", "Skipped"];

function isGrouped() { return run.rows.size > GROUP_ABOVE; }

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

function newRow(n) {
  const tr = el("tr", { "data-n": n, tabindex: 0 });
  tr.addEventListener("click", () => select(n));
  for (const cls of ["n", "name", "state", "elapsed", "attempts"]) tr.append(el("td", { class: cls }));
  tr.append(el("td", { class: "last" }, el("div")));  // one line; the whole of it on hover
  rowElements.set(n, tr);
  return tr;
}

function drawRow(row) {
  let tr = rowElement(row.n);
  if (!tr) {
    tr = newRow(row.n);
    document.querySelector("#steps tbody").append(tr);
  }
  fillRow(tr, row);
}

function setText(node, text) {  // a node redrawn with what it shows already is left alone
  text = String(text);
  if (node.textContent !== text) node.textContent = text;
}

function fillRow(tr, row) {
  if (tr.getAttribute("data-step") !== row.Name) tr.setAttribute("data-step", row.Name);
  if (tr.getAttribute("data-state") !== row.State) tr.setAttribute("data-state", row.State);
  tr.classList.toggle("selected", run.selected === row.n);
  const cells = tr.children;
  setText(cells[0], row.n);
  setText(cells[1], row.Name);
  setText(cells[2], row.State);
  setText(cells[3], elapsedOf(row));
  setText(cells[4], row.Attempt || "");
  setText(cells[5].firstChild, row.last || "");
  if (cells[5].title !== (row.last || "")) cells[5].title = row.last || "";
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
  if (isGrouped()) { later(); return; }  // the counts come with the next grouped draw
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
    const tr = row.State === "Running" ? rowElement(row.n) : null;
    if (tr) tr.children[3].textContent = elapsedOf(row);
  }
  const end = run.live && running ? Date.now() / 1000 : last;
  document.getElementById("elapsed").textContent = first && end ? "elapsed " + duration(end - first) : "";
}

function asks(row) { return row.question !== null && row.question !== undefined; }

function drawQuestions(all) {
  const box = document.getElementById("questions");
  const found = all || [...run.rows.values()].filter(asks);
  const waiting = found.slice(0, SHOW);
  const keep = new Map([...box.querySelectorAll("[data-question-for]")].map((q) => [q.getAttribute("data-question-for"), q]));
  const nodes = waiting.map((row) => {
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
  });
  if (found.length > waiting.length) {
    const more = String(found.length - waiting.length);
    const old = box.querySelector("[data-more-questions]");
    nodes.push(old && old.getAttribute("data-more-questions") === more ? old : el("p", {
      class: "muted", "data-more-questions": more, text: "… and " + more + " more questions (filter the steps to find one)" }));
  }
  // The same questions: the page is left as it is (a field being typed in keeps its focus).
  if (box.children.length !== nodes.length || nodes.some((node, i) => box.children[i] !== node)) box.replaceChildren(...nodes);
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

// --- the grouped view of a big run ------------------------------------------------------

function groupOf(row) {  // kept per step: names and tags do not change (emptied on a new grouping)
  let key = run.groupKeys.get(row.n);
  if (key !== undefined) return key;
  if (run.view.by === "name") key = String(row.Name).split("@")[0];
  else {
    const value = (run.tags[row.n] || {})[run.view.by];
    key = value === undefined || value === null ? "(no " + run.view.by + ")" : String(value);
  }
  run.groupKeys.set(row.n, key);
  return key;
}

function wildcard(pattern) {  // shell-style * and ?, the whole value, any case
  const text = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp("^" + text + "$", "i");
}

// The live view's filter (trail.layer2.groups.Filter): every word must match; key=value a tag
// (state=, name= too), with * and ?; a plain word the name (a part of it) or the state.
function matcher(text) {
  const words = text.trim().split(/\s+/).filter(Boolean).map((word) => {
    const at = word.indexOf("=");
    if (at > 0) return { key: word.slice(0, at).toLowerCase(), value: wildcard(word.slice(at + 1)) };
    return { key: null, value: word.toLowerCase() };
  });
  if (!words.length) return null;
  return (row) => words.every(({ key, value }) => {
    if (key === null) return String(row.Name).toLowerCase().includes(value) || row.State.toLowerCase() === value;
    if (key === "state") return value.test(row.State);
    if (key === "name") return value.test(String(row.Name));
    const tags = run.tags[row.n] || {};
    const found = Object.keys(tags).find((k) => k.toLowerCase() === key);
    return found !== undefined && tags[found] !== null && value.test(String(tags[found]));
  });
}

function rank(state) { const i = ORDER.indexOf(state); return i < 0 ? ORDER.length : i; }

function layout() {  // one pass over the rows
  const match = matcher(run.view.filter);
  const out = { questions: [], failures: [], running: [], groups: new Map(), done: {}, counts: {}, matched: match ? [] : null };
  for (const row of run.rows.values()) {  // in n order: the snapshot's, kept by Map.set
    const state = row.State;
    out.counts[state] = (out.counts[state] || 0) + 1;
    if (asks(row)) out.questions.push(row);
    else if (FAILURES.has(state)) out.failures.push(row);
    else if (state === "Running") out.running.push(row);
    if (DONE.has(state)) out.done[state] = (out.done[state] || 0) + 1;
    const key = groupOf(row);
    let group = out.groups.get(key);
    if (!group) out.groups.set(key, group = { key: key, steps: [], counts: {} });
    group.steps.push(row);
    group.counts[state] = (group.counts[state] || 0) + 1;
    if (match && match(row)) out.matched.push(row);
  }
  return out;
}

function later() {  // at once after a quiet spell; a busy run's changes are drawn together
  if (run.due !== null) return;
  const every = Math.max(DRAW_EVERY, 4 * run.drawMs);  // a fifth of the page's time at most
  run.due = setTimeout(drawGrouped, Math.max(0, run.drawnAt + every - performance.now()));
}

// Rows drawn last time, used again when they would be drawn the same: a redraw changes in the
// page only what changed, and the browser lays out only that.
const drawn = { heads: new Map(), groups: new Map(), lastHeads: new Map(), lastGroups: new Map(), counts: "" };

function headRow(text, attrs) {
  const key = text + JSON.stringify(attrs || {});
  const tr = drawn.heads.get(key) || drawn.lastHeads.get(key) ||
    el("tr", Object.assign({ class: "section" }, attrs || {}), el("td", { colspan: 6, text: text }));
  drawn.heads.set(key, tr);
  return tr;
}

function groupRow(group, expanded) {
  const states = Object.keys(group.counts).sort((a, b) => rank(a) - rank(b));
  const key = group.key + "\n" + expanded + states.map((state) => state + group.counts[state]).join();
  let tr = drawn.groups.get(key) || drawn.lastGroups.get(key);
  if (tr) { drawn.groups.set(key, tr); return tr; }
  const counts = el("span", { class: "counts" });
  for (const state of states) {
    counts.append(el("span", { class: "count", "data-state": state, text: group.counts[state] + " " + state }));
  }
  tr = el("tr", { class: "group", "data-group": group.key, "data-expanded": expanded, tabindex: 0 },
    el("td", { class: "n", text: expanded ? "▾" : "▸" }), el("td", { class: "name", text: group.key }),
    el("td", { text: group.steps.length + " steps" }), el("td", { colspan: 3 }, counts));
  tr.addEventListener("click", () => {
    if (run.view.expanded.has(group.key)) run.view.expanded.delete(group.key); else run.view.expanded.add(group.key);
    drawGrouped();
  });
  drawn.groups.set(key, tr);
  return tr;
}

function drawGrouped() {
  const started = performance.now();
  if (run.due !== null) { clearTimeout(run.due); run.due = null; }
  const view = run.view;
  const found = layout();
  const body = [];
  drawn.lastHeads = drawn.heads;  // what this draw uses is kept for the next
  drawn.lastGroups = drawn.groups;
  drawn.heads = new Map();
  drawn.groups = new Map();
  const before = new Map(rowElements);  // rows drawn last time are used again
  rowElements.clear();
  const stepRow = (row) => {
    let tr = before.get(row.n);
    if (tr) rowElements.set(row.n, tr); else tr = newRow(row.n);
    fillRow(tr, row);
    body.push(tr);
  };
  const list = (rows, what, attrs) => {
    if (!rows.length) return;
    body.push(headRow(rows.length + " " + what, attrs));
    rows.slice(0, SHOW).forEach(stepRow);
    if (rows.length > SHOW) body.push(headRow("… " + (rows.length - SHOW) + " more " + what + ": filter to find one", { class: "section more" }));
  };
  const listed = new Set();
  if (found.matched) {
    list(found.matched, "step(s) match " + JSON.stringify(view.filter), { "data-section": "matched" });
  } else {
    const attention = found.questions.concat(found.failures);
    list(attention, "need you", { "data-section": "attention" });
    list(found.running, "running", { "data-section": "running" });
    for (const row of attention.slice(0, SHOW).concat(found.running.slice(0, SHOW))) listed.add(row.n);
    const groups = [...found.groups.values()];
    const open = groups.filter((g) => !g.steps.every((row) => DONE.has(row.State)));
    const done = groups.filter((g) => !open.includes(g));
    if (open.length) body.push(headRow(open.length + " group(s) by " + view.by + ", not done", { "data-section": "groups" }));
    for (const group of open.slice(0, SHOW)) {
      if (group.steps.length === 1) {
        if (!listed.has(group.steps[0].n)) stepRow(group.steps[0]);
        continue;
      }
      const expanded = view.expanded.has(group.key);
      const tr = groupRow(group, expanded);
      body.push(tr);
      if (expanded) {
        group.steps.slice(0, SHOW).forEach(stepRow);
        if (group.steps.length > SHOW) body.push(headRow("… " + (group.steps.length - SHOW) + " more in " + group.key + ": filter to find one", { class: "section more" }));
      }
    }
    if (open.length > SHOW) body.push(headRow("… " + (open.length - SHOW) + " more groups: filter, or group by another tag", { class: "section more" }));
    const line = document.getElementById("done-line");
    const parts = Object.keys(found.done).sort((a, b) => rank(a) - rank(b)).map((state) => found.done[state] + " " + state);
    setText(line, parts.length ? "done: " + parts.join(" · ") +
      (done.length ? " (every step done in " + done.slice(0, 5).map((g) => g.key).join(", ") + (done.length > 5 ? " and " + (done.length - 5) + " more" : "") + ")" : "") : "");
  }
  document.getElementById("done-line").hidden = !!found.matched || !document.getElementById("done-line").textContent;
  const tbody = document.querySelector("#steps tbody");
  const same = tbody.children.length === body.length && body.every((tr, i) => tbody.children[i] === tr);
  if (!same) tbody.replaceChildren(...body);
  for (const tr of body) if (tr.getAttribute("data-n") === String(run.selected)) tr.classList.add("selected");
  const counts = Object.fromEntries(Object.entries(found.counts).sort((a, b) => rank(a[0]) - rank(b[0])));
  if (JSON.stringify(counts) !== drawn.counts) {
    drawn.counts = JSON.stringify(counts);
    document.getElementById("counts").replaceChildren(countBadges(counts));
  }
  drawQuestions(found.questions);
  run.drawnAt = performance.now();
  run.drawMs = run.drawnAt - started;
}

function drawViewControls() {
  const box = document.getElementById("view-controls");
  box.hidden = !isGrouped();
  if (box.hidden) return;
  const keys = new Set();
  for (const tags of Object.values(run.tags)) for (const key of Object.keys(tags)) if (key !== "n" && key !== "name") keys.add(key);
  const by = document.getElementById("group-by");
  by.replaceChildren(...["name", ...[...keys].sort()].map((key) => el("option", { value: key, text: key === "name" ? "name (before @)" : key })));
  by.value = keys.has(run.view.by) ? run.view.by : "name";
  run.view.by = by.value;
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
  const lines = row["Output messages"] || [];
  // The page is sent a step's newest lines; the whole output is a link away (plain text).
  const earlier = (row.output_count || lines.length) - lines.length;
  const note = document.getElementById("step-output-earlier");
  note.hidden = earlier <= 0;
  if (earlier > 0) {
    const link = document.createElement("a");
    link.href = "/api/runs/" + encodeURIComponent(run.key) + "/steps/" + row.n + "/output";
    link.target = "_blank";
    link.rel = "noopener";
    link.textContent = "all " + row.output_count + " lines";
    note.replaceChildren(earlier + " earlier line(s) not shown: ", link);
  }
  output.textContent = lines.map(shown).join("\n");
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
  run.tags = data.tags || {};
  run.groupKeys.clear();
  document.body.classList.toggle("grouped", isGrouped());
  drawViewControls();
  if (isGrouped()) drawGrouped(); else for (const row of run.rows.values()) drawRow(row);
  drawHeader(data);
  drawTrailActions();
  if (!isGrouped()) drawQuestions();
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
  if (data.row && isGrouped()) {  // applied now, drawn with the others soon
    run.rows.set(data.row.n, data.row);
    later();
    if (data.row.n === run.selected) drawStepPanel();
  } else if (data.row) {
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
  const filter = document.getElementById("filter");
  filter.addEventListener("input", () => { run.view.filter = filter.value; later(); });
  document.getElementById("group-by").addEventListener("change", (e) => {
    run.view.by = e.target.value;
    run.view.expanded.clear();
    run.groupKeys.clear();
    drawGrouped();
  });
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
