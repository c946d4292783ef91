// rebench-view: the runs list and one run's page, over the JSON API of rebench_core/viewer/app.py.
// Everything a run wrote is put on the page as text (textContent), never as markup.

const main = document.getElementById("main");
const crumbs = document.getElementById("crumbs");

// ---------------------------------------------------------------------------------------------
// small helpers

function el(tag, attrs, ...children) {
  const node = tag === "svg" || SVG_TAGS.has(tag)
    ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.setAttribute("class", value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
const SVG_TAGS = new Set(["path", "line", "circle", "text", "g", "rect", "title", "polyline"]);

async function getJSON(url) {
  const response = await fetch(url);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

const api = (what, runId, query = "") => `/api/${what}/${encodePath(runId)}${query}`;
const encodePath = (id) => id.split("/").filter(Boolean).map(encodeURIComponent).join("/");
const runUrl = (id) => `/run/${encodePath(id)}`;

function duration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
  const s = Math.max(0, seconds);
  if (s < 1 && s > 0) return `${Math.max(1, Math.round(s * 1000))} ms`;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return Math.round(s % 60) ? `${Math.floor(s / 60)} min ${String(Math.round(s % 60)).padStart(2, "0")} s` : `${Math.floor(s / 60)} min`;
  return Math.floor((s % 3600) / 60) ? `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min` : `${Math.floor(s / 3600)} h`;
}
const num = (v, digits = 3) => (v === null || v === undefined || !isFinite(v)) ? "–" : Number(v).toFixed(digits);
const count = (v) => (v === null || v === undefined) ? "–" : Number(v).toLocaleString("en-US");
const dollars = (v) => (v === null || v === undefined) ? "–" : v === 0 ? "$0" : v < 0.01 ? `$${v.toFixed(4)}` : `$${v.toFixed(2)}`;
const shortNum = (v) => (v === null || v === undefined || !isFinite(v)) ? "–" : Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? Number(v).toExponential(2) : Number(v.toPrecision(4)).toString();
function when(ts) {
  if (!ts) return "–";
  const d = new Date(ts * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
const firstLine = (text, max = 160) => {
  const line = String(text ?? "").trim().split("\n")[0];
  return line.length > max ? line.slice(0, max) + "…" : line;
};
const statusBadge = (status) => el("span", { class: `badge ${status}` }, status || "?");
const pretty = (value) => JSON.stringify(value, null, 1);

// A long text: the first lines, and the whole text behind a button.
function folded(text, lines = 14, cls = "") {
  text = String(text ?? "");
  const all = text.split("\n");
  if (all.length <= lines + 2 && text.length <= 4000) return el("pre", { class: cls }, text);
  const shown = all.slice(0, lines).join("\n").slice(0, 4000);
  const pre = el("pre", { class: cls }, shown);
  const button = el("button", { class: "link fold", onclick: () => {
    pre.textContent = text; button.remove();
  } }, `show all ${all.length.toLocaleString("en-US")} lines (${text.length.toLocaleString("en-US")} characters)`);
  return el("div", {}, pre, button);
}

// ---------------------------------------------------------------------------------------------
// the runs list

const LIST_COLUMNS = [
  ["status", "status"], ["environment", "environment"], ["size", "size"], ["scaffold", "scaffold"],
  ["model", "model"], ["why", "why it ended"], ["final_normalized_score", "score", "num"],
  ["score_calls", "score calls", "num"], ["model_calls", "model calls", "num"], ["tokens", "tokens", "num"],
  ["cost_usd", "dollars", "num"], ["counted_s", "counted time", "num"], ["started_at", "started", "num"],
];

async function showRuns() {
  crumbs.textContent = "";
  document.title = "rebench-view: runs";
  const state = { sort: "started_at", asc: false, filter: new URLSearchParams(location.search).get("q") || "" };
  const filter = el("input", { type: "search", placeholder: "filter: environment, model, status, …",
                                value: state.filter, "aria-label": "filter runs" });
  const counts = el("span", { class: "muted" });
  const table = el("table", { class: "runs" });
  main.replaceChildren(el("h1", {}, "Runs"), el("div", { class: "toolbar" }, filter, counts), table);
  let data = null;
  const render = () => renderRunsTable(table, counts, data, state);
  filter.addEventListener("input", () => { state.filter = filter.value; render(); });
  table.addEventListener("click", (event) => {
    const th = event.target.closest("th[data-key]");
    if (th) {
      state.asc = state.sort === th.dataset.key ? !state.asc : !th.classList.contains("num");
      state.sort = th.dataset.key; render(); return;
    }
    const row = event.target.closest("tr.run");
    if (row && !event.target.closest("a")) location.href = runUrl(row.dataset.id);
  });
  const refresh = async () => {
    try { data = await getJSON("/api/runs"); render(); }
    catch (error) { main.append(el("p", { class: "problem" }, `Cannot load the runs: ${error.message}`)); return; }
    setTimeout(refresh, 4000);  // new runs appear, running ones move on
  };
  await refresh();
}

function renderRunsTable(table, counts, data, state) {
  const words = state.filter.toLowerCase().split(/\s+/).filter(Boolean);
  const matches = (run) => words.every((w) => LIST_COLUMNS.some(([key]) => String(run[key] ?? "").toLowerCase().includes(w))
                                             || (run.cell || "").toLowerCase().includes(w) || run.path.toLowerCase().includes(w));
  const runs = data.runs.filter(matches);
  const running = data.runs.filter((r) => r.status === "running").length;
  counts.textContent = `${runs.length} of ${data.runs.length} runs${running ? `, ${running} running` : ""} under ${data.roots.join(", ")}`;
  const key = state.sort;
  const sorted = [...runs].sort((a, b) => {
    const x = a[key], y = b[key];
    if (x === y) return 0;
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    return (x < y ? -1 : 1) * (state.asc ? 1 : -1);
  });
  const head = el("tr", {}, LIST_COLUMNS.map(([k, label, cls]) =>
    el("th", { "data-key": k, class: [cls, k === key ? "sorted" : "", k === key && state.asc ? "asc" : ""].filter(Boolean).join(" ") }, label)));
  const body = el("tbody");
  const byId = new Map(sorted.map((r) => [r.id, r]));
  const inStudy = new Set();
  for (const study of data.studies) {
    const cells = study.cells.map((c) => ({ ...c, runs: c.runs.filter((id) => byId.has(id)) })).filter((c) => c.runs.length);
    study.cells.forEach((c) => c.runs.forEach((id) => inStudy.add(id)));
    if (!cells.length) continue;
    body.append(el("tr", { class: "group" }, el("td", { colspan: LIST_COLUMNS.length }, `study: ${study.name}`,
      el("span", { class: "muted" }, ` (${study.path})`))));
    for (const cell of cells) {
      const members = sorted.filter((r) => cell.runs.includes(r.id));
      const scores = members.map((r) => r.final_normalized_score).filter((v) => v !== null && v !== undefined);
      const stats = scores.length ? `best ${num(Math.max(...scores))}, mean ${num(scores.reduce((a, b) => a + b, 0) / scores.length)}` : "no score yet";
      const planned = study.samples ? ` of ${study.samples}` : "";
      body.append(el("tr", { class: "cell" }, el("td", { colspan: LIST_COLUMNS.length },
        `${cell.cell}: ${members.length}${planned} runs, ${stats}`)));
      members.forEach((r) => body.append(runRow(r)));
    }
  }
  const loose = sorted.filter((r) => !inStudy.has(r.id));
  if (loose.length && data.studies.length) body.append(el("tr", { class: "group" }, el("td", { colspan: LIST_COLUMNS.length }, "runs")));
  loose.forEach((r) => body.append(runRow(r)));
  if (!sorted.length) body.append(el("tr", {}, el("td", { colspan: LIST_COLUMNS.length, class: "muted" },
    data.runs.length ? "No run matches the filter." : "No run directory here yet; this list refreshes by itself.")));
  table.replaceChildren(el("thead", {}, head), body);
}

function runRow(r) {
  const limit = r.time_limit_s ? ` / ${duration(r.time_limit_s)}` : "";
  const cells = {
    status: statusBadge(r.status), environment: el("a", { href: runUrl(r.id) }, r.environment || "?"),
    why: r.problem || r.why, final_normalized_score: num(r.final_normalized_score), score_calls: count(r.score_calls),
    model_calls: count(r.model_calls), tokens: count(r.tokens), cost_usd: dollars(r.cost_usd),
    counted_s: duration(r.counted_s) + limit, started_at: when(r.started_at),
  };
  return el("tr", { class: "run", "data-id": r.id, title: r.path }, LIST_COLUMNS.map(([k, , cls]) =>
    el("td", { class: [cls, k === "why" || k === "model" ? "clip" : ""].filter(Boolean).join(" "),
               title: k === "model" || k === "why" ? r[k] || null : null }, k in cells ? cells[k] : r[k] ?? "")));
}

// ---------------------------------------------------------------------------------------------
// one run

async function showRun(runId) {
  let meta;
  try { meta = await getJSON(api("run", runId)); }
  catch (error) { main.replaceChildren(el("p", { class: "problem" }, error.message)); return; }
  const row = meta.row;
  document.title = `rebench-view: ${row.environment} · ${row.scaffold}`;
  crumbs.replaceChildren(el("a", { href: "/" }, "runs"), " / ", row.path);
  const run = new RunPage(runId, meta);
  await run.start();
}

class RunPage {
  constructor(runId, meta) {
    this.runId = runId;
    this.meta = meta;
    this.items = [];           // every transcript item, by index
    this.offset = 0;
    this.status = meta.row.status;
    this.start_ = null;        // run_start event
    this.end = null;           // run_end event
    this.rendered = new Map(); // item index -> its element in the timeline
    this.follow = true;
    this.build();
  }

  build() {
    const row = this.meta.row;
    this.badge = statusBadge(row.status);
    this.why = el("span", { class: "muted" }, row.why || "");
    this.notices = el("div");
    for (const p of this.meta.problems || []) this.notices.append(el("div", { class: "problem" }, p));
    if (row.problem) this.notices.append(el("div", { class: "problem" }, row.problem));
    this.cards = el("div", { class: "cards" });
    this.chart = el("div", { class: "chart" });
    this.timeline = el("div", { class: "timeline" });
    this.panes = {
      transcript: el("div", { class: "pane" }, this.filters(), this.timeline),
      scaffold: el("div", { class: "pane" }), workspace: el("div", { class: "pane" }), config: el("div", { class: "pane" }),
    };
    this.tabs = el("div", { class: "tabs", role: "tablist" }, Object.keys(this.panes).map((name) =>
      el("button", { "data-tab": name, role: "tab", onclick: () => this.show(name) }, name)));
    const title = `${row.environment} (${row.size}) · ${row.scaffold} · ${row.model}`;
    main.replaceChildren(
      el("div", { class: "runhead" }, el("h1", {}, title), this.badge, this.why),
      el("div", { class: "path" }, row.path),
      this.notices, this.cards, this.chart, this.tabs, ...Object.values(this.panes));
    this.show(location.hash.slice(1) in this.panes ? location.hash.slice(1) : "transcript");
  }

  filters() {
    this.hidden = new Set(["minor"]);
    const box = (cls, label, on) => {
      const input = el("input", { type: "checkbox", checked: on, onchange: () => {
        input.checked ? this.hidden.delete(cls) : this.hidden.add(cls); this.applyFilters();
      } });
      if (!on) this.hidden.add(cls); else this.hidden.delete(cls);
      return el("label", {}, input, " ", label);
    };
    const follow = el("input", { type: "checkbox", checked: true, onchange: () => { this.follow = follow.checked; } });
    this.followBox = el("label", {}, follow, " follow the end");
    return el("div", { class: "filters" }, "show:", box("model", "model calls", true), box("tool", "tool calls", true),
      box("score", "scores", true), box("scaffold", "scaffold events", true), box("minor", "phases and clock", false),
      this.followBox);
  }

  applyFilters() {
    for (const node of this.timeline.children) {
      node.hidden = [...this.hidden].some((cls) => node.classList.contains(cls));
    }
  }

  show(name) {
    for (const [key, pane] of Object.entries(this.panes)) pane.hidden = key !== name;
    for (const b of this.tabs.children) b.classList.toggle("on", b.dataset.tab === name);
    history.replaceState(null, "", `#${name}`);
    if (name === "scaffold" && !this.scaffoldLoaded) { this.scaffoldLoaded = true; this.loadScaffold(); }
    if (name === "workspace" && !this.workspaceLoaded) { this.workspaceLoaded = true; this.loadWorkspace(); }
    if (name === "config") this.panes.config.replaceChildren(el("h3", {}, "config.json"),
      el("pre", {}, this.meta.config ? pretty(this.meta.config) : "This run directory has no config.json."));
  }

  async start() {
    await this.poll();
    setInterval(() => this.tick(), 1000);
  }

  async poll() {
    let page;
    try { page = await getJSON(api("transcript", this.runId, `?offset=${this.offset}`)); }
    catch (error) { this.notices.append(el("div", { class: "problem" }, `Cannot read the transcript: ${error.message}`)); return; }
    this.status = page.status;
    if (page.notice && !this.noticeShown) { this.noticeShown = true; this.notices.append(el("div", { class: "notice" }, page.notice)); }
    for (const item of page.items) this.add(item);
    this.offset = page.offset;
    this.summarize();
    if (page.more) return this.poll();
    if (!page.ended && this.status === "running") setTimeout(() => this.poll(), 1000);
    else if (this.status === "running") { this.status = "ended"; }
    if (this.follow && this.status === "running") window.scrollTo(0, document.body.scrollHeight);
  }

  add(item) {
    this.items[item.index] = item;
    const e = item.event || {};
    if (item.type === "run_start" || item.type === "run_resume") this.start_ = this.start_ || e;
    if (item.type === "run_end") {
      this.end = e;
      this.badge.replaceWith(this.badge = statusBadge(e.status));
      this.why.textContent = firstLine(e.error) || (e.status === "submitted" ? "the scaffold submitted" : "");
    }
    // A finished request is shown by its call; a result joins its tool call; a score its start.
    const link = item.type === "model_call" ? item.request_index : item.type === "tool_result" ? item.call_index
      : item.type === "score" ? item.start_index : null;
    const node = this.render(item);
    if (link !== null && link !== undefined && this.rendered.has(link)) {
      this.rendered.get(link).replaceWith(node);
      this.rendered.delete(link);
    } else if (item.type === "pause" && this.pendingRequest()) {
      return;  // shown inside the model call it delays
    } else {
      this.timeline.append(node);
    }
    this.rendered.set(item.index, node);
    node.hidden = [...this.hidden].some((cls) => node.classList.contains(cls));
  }

  pendingRequest() {
    return [...this.rendered.keys()].some((i) => this.items[i]?.type === "model_request");
  }

  // -- one timeline entry ------------------------------------------------------------------------
  render(item) {
    const e = item.event || {};
    const t = item.elapsed_s === null || item.elapsed_s === undefined ? "" : duration(item.elapsed_s);
    const make = (cls, kind, gist, meta, body) => {
      const bodyNode = el("div", { class: "body", hidden: true });
      const head = el("div", { class: "head", onclick: () => {
        if (!bodyNode.hidden) { bodyNode.hidden = true; return; }
        if (!bodyNode.childNodes.length && body) bodyNode.append(...[].concat(body()).filter((n) => n !== null && n !== undefined));
        bodyNode.hidden = false;
      } }, el("span", { class: "t" }, t), el("span", { class: "kind" }, kind), el("span", { class: "gist" }, gist),
      el("span", { class: "meta" }, meta || ""));
      return el("div", { class: `item ${cls}`, "data-index": item.index, "data-type": item.type }, head, bodyNode);
    };
    switch (item.type) {
      case "model_request":
        return make("model pending", `model call #${item.call ?? "?"}`, "waiting for the model…",
          sinceNode(item.ts),
          () => el("div", { class: "kv" }, kv({ purpose: item.purpose, "prompt tokens (estimate)": e.prompt_tokens_estimate, "max tokens": e.max_tokens })));
      case "model_call": return this.modelCall(item, make);
      case "tool_call":
        return make("tool pending", e.tool, firstLine(e.input), sinceNode(item.ts),
          () => [el("h3", {}, "input"), folded(e.input), el("div", { class: "muted" }, `running; times out after ${duration(e.timeout_s)}`)]);
      case "tool_result": return this.toolResult(item, make);
      case "score_start":
        return make("score pending", `scoring (${e.trigger})`, "scoring…", sinceNode(item.ts));
      case "score": {
        const gist = e.valid ? `raw ${shortNum(e.raw)} · normalised ${num(e.normalized)}`
          : `invalid: ${firstLine((e.message || {}).error || "no reason given")}`;
        return make("score", `score (${e.trigger})`, gist, `${e.valid ? "valid" : "invalid"} · took ${duration(e.duration_s)}`,
          () => [el("div", { class: "kv" }, kv({ raw: e.raw, normalised: e.normalized, valid: e.valid, trigger: e.trigger, "took": duration(e.duration_s) })),
                 el("h3", {}, "message (what the agent saw)"), el("pre", {}, pretty(e.message ?? {})),
                 el("h3", {}, "details (kept from the agent)"), el("pre", { class: "short" }, pretty(e.details ?? {}))]);
      }
      case "limit":
        return make("limit", `limit: ${e.kind}`, e.detail || "", e.when || "");
      case "error":
        return make("error", `error (${e.where || "?"})`, firstLine(e.error), "", () => [el("pre", {}, e.error || ""), e.traceback ? folded(e.traceback) : null]);
      case "pause":
        return make("minor", "paused", `${e.reason}: ${firstLine(e.error)}`, `waits ${duration(e.wait_s)}`);
      case "bad_line":
        return make("bad", item.torn ? "torn line" : "bad line", item.error, `byte ${count(item.offset)}`,
          () => el("pre", {}, item.text));
      case "scaffold":
        return make("scaffold", `scaffold: ${e.kind}`, firstLine(scaffoldGist(e)), "", () => el("pre", {}, pretty(without(e, ["ts", "elapsed_s", "type"]))));
      case "submit":
        return make("score", "submitted", firstLine(e.answer) || "(no answer text)", "", () => el("pre", {}, e.answer || ""));
      case "run_start": case "run_resume":
        return make("minor", item.type === "run_start" ? "run started" : "run resumed", `${e.environment} (${e.size}) · ${e.scaffold} · ${e.model}`, `limits: ${limitsText(e.limits)}`,
          () => el("pre", {}, pretty(without(e, ["ts", "type"]))));
      case "run_end":
        return make(e.status === "error" ? "error" : "score", "run ended", `${e.status}${e.error ? ": " + firstLine(e.error) : ""}`,
          `final score ${shortNum(e.final_raw_score)} (normalised ${num(e.final_normalized_score)})`, () => el("pre", {}, pretty(without(e, ["ts", "type"]))));
      default:
        return make("minor", item.type.replace(/_/g, " "), firstLine(e.phase || e.reason || e.model || ""), "",
          () => el("pre", {}, pretty(without(e, ["ts", "type"]))));
    }
  }

  modelCall(item, make) {
    const e = item.event;
    const u = e.usage || {};
    const inTokens = (u.input_tokens || 0) + (u.cache_read_tokens || 0) + (u.cache_write_tokens || 0);
    const message = e.message || {};
    const calls = (message.tool_calls || []).map((c) => c.name);
    const gist = firstLine(message.content) || (calls.length ? `calls ${calls.join(", ")}` : "(empty reply)");
    const retries = item.retries || [];
    const meta = [`${count(inTokens)} in / ${count(u.output_tokens)} out`, dollars(e.cost_usd),
                  e.latency_s === undefined || e.latency_s === null ? null : duration(e.latency_s),
                  retries.length ? `${retries.length} ${retries.length === 1 ? "retry" : "retries"}` : null,
                  calls.length ? `→ ${calls.join(", ")}` : null].filter(Boolean).join(" · ");
    const label = item.purpose === "agent" ? `model call #${item.call ?? "?"}` : `model call (${item.purpose})`;
    return make("model", label, gist, meta, () => {
      const parts = [];
      if (item.purpose === "agent" && item.prompt_length !== null && item.prompt_length !== undefined) {
        parts.push(el("h3", {}, `prompt: ${item.prompt_length} messages`));
        const keptCount = item.kept.reduce((n, [a, b]) => n + b - a, 0);
        if (keptCount) {
          const ranges = item.kept.map(([a, b]) => b - a === 1 ? `${a}` : `${a}–${b - 1}`).join(", ");
          const plural = keptCount === 1 ? "message" : "messages";
          const said = item.input_base === null || item.input_base === undefined
            ? `${keptCount} ${plural} sent in earlier calls, not repeated here`
            : `${keptCount} ${plural} as in call #${item.input_base} (its messages ${ranges}), not repeated here`;
          parts.push(el("div", { class: "kept" }, `${said} · `,
            el("button", { class: "link", onclick: async (ev) => {
              ev.target.disabled = true;
              try {
                const data = await getJSON(`/api/prompt/${item.call}/${encodePath(this.runId)}`);
                const fresh = new Set(item.new.map((entry) => entry.position));
                messages.replaceChildren(el("div", { class: "kept" }, `the whole prompt, ${data.messages.length} messages:`),
                  ...data.messages.map((m, i) => messageBox(m, i, null, fresh.has(i))));
              } catch (error) { messages.append(el("div", { class: "problem" }, error.message)); }
            } }, "show the whole prompt")));
        }
        if (item.prompt_error) parts.push(el("div", { class: "problem" }, item.prompt_error));
        const messages = el("div", {}, el("div", { class: "kept" }, item.new.length ? `${item.new.length} new in this call:`
          : "nothing new in this call's prompt."), ...item.new.map((entry) => messageBox(entry.message, entry.position)));
        parts.push(messages);
      }
      parts.push(el("h3", {}, "completion"), messageBox(message, null, "completion"));
      const retryEvents = retries.map((i) => this.items[i]?.event).filter(Boolean);
      if (retryEvents.length) {
        parts.push(el("h3", {}, "retries (clock paused)"), el("table", { class: "plain" },
          el("tr", {}, el("th", {}, "waited"), el("th", {}, "status"), el("th", {}, "error")),
          retryEvents.map((p) => el("tr", {}, el("td", {}, duration(p.wait_s)), el("td", {}, p.status ?? ""), el("td", {}, p.error || "")))));
      }
      parts.push(el("h3", {}, "call"), el("div", { class: "kv" }, kv({
        model: e.model, purpose: item.purpose, "stop reason": e.stop_reason, latency: duration(e.latency_s), cost: dollars(e.cost_usd),
        "input tokens": u.input_tokens, "cache read": u.cache_read_tokens, "cache write": u.cache_write_tokens,
        "output tokens": u.output_tokens, "reasoning tokens": u.reasoning_tokens, "prompt tokens (estimate)": e.prompt_tokens_estimate,
        "max tokens": e.max_tokens, tools: (e.tools || []).join(", "), trigger: e.trigger })));
      return parts;
    });
  }

  toolResult(item, make) {
    const e = item.event;
    const call = this.items[item.call_index]?.event || {};
    const exit = e.timed_out ? el("span", { class: "exit-bad" }, `timed out after ${duration(call.timeout_s ?? e.duration_s)}`)
      : el("span", { class: e.exit_code === 0 ? "exit-ok" : "exit-bad" }, `exit ${e.exit_code ?? "?"}`);
    const meta = el("span", {}, exit, ` · ${duration(e.duration_s)}`);
    const label = e.tool + (call.persistent === false ? " (fresh)" : "");
    return make("tool", label, firstLine(call.input ?? "(input not in the log)"), meta, () => [
      el("h3", {}, "input"), folded(call.input ?? "", 30),
      el("h3", {}, "output"), folded(e.output || "(no output)", 20),
      e.truncated ? el("div", { class: "muted" }, `output cut to its head and tail; all of it is in ${e.full_output_path}`) : null,
      el("div", { class: "kv" }, kv({ "exit code": e.exit_code, "timed out": e.timed_out, duration: duration(e.duration_s), timeout: duration(call.timeout_s) })),
    ]);
  }

  // -- figures above the tabs --------------------------------------------------------------------
  summarize() {
    const items = this.items.filter(Boolean);
    const agent = items.filter((i) => i.type === "model_call" && i.purpose === "agent");
    const other = items.filter((i) => i.type === "model_call" && i.purpose !== "agent");
    const tokens = agent.reduce((n, i) => n + ["input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens"]
      .reduce((m, k) => m + ((i.event.usage || {})[k] || 0), 0), 0);
    const cost = agent.reduce((n, i) => n + (i.event.cost_usd || 0), 0);
    const otherCost = other.reduce((n, i) => n + (i.event.cost_usd || 0), 0);
    const scores = items.filter((i) => i.type === "score").map((i) => ({ ...i.event, elapsed_s: i.elapsed_s }));
    const tools = items.filter((i) => i.type === "tool_call").length;
    const limits = (this.start_ || {}).limits || {};
    const elapsed = this.end?.time?.counted_s ?? Math.max(0, ...items.map((i) => i.elapsed_s || 0));
    this.figures = { tokens, cost, limits, elapsed, scores };
    const best = bestScore(scores, (this.start_ || {}).direction);
    const final = this.end ? this.end.final_normalized_score : null;
    const card = (label, value, sub, fraction) => el("div", { class: "card" }, el("div", { class: "label" }, label),
      el("div", { class: "value" }, value), sub ? el("div", { class: "sub" }, sub) : null, fraction === undefined ? null : usageBar(fraction));
    this.timeCard = card("counted time", duration(elapsed), limits.time_s ? `of ${duration(limits.time_s)}` : "no time limit",
      limits.time_s ? elapsed / limits.time_s : undefined);
    this.cards.replaceChildren(
      card("final score", this.end ? num(final) : "–", this.end ? `raw ${shortNum(this.end.final_raw_score)}` : "the run has not ended"),
      card("best score so far", best ? num(best.normalized) : "–", best ? `raw ${shortNum(best.raw)} at ${duration(best.elapsed_s)}` : "no valid score yet"),
      this.timeCard,
      card("tokens", count(tokens), limits.tokens ? `of ${count(limits.tokens)}` : "no token limit", limits.tokens ? tokens / limits.tokens : undefined),
      card("dollars", dollars(cost), (limits.cost_usd ? `of ${dollars(limits.cost_usd)}` : "no dollar limit") + (otherCost ? ` · endpoint and judge ${dollars(otherCost)}` : ""),
        limits.cost_usd ? cost / limits.cost_usd : undefined),
      card("calls", `${agent.length} model · ${tools} tool`, `${scores.filter((s) => s.trigger === "agent").length} score calls by the agent`));
    this.chart.replaceChildren(scoreChart(scores, limits.time_s, elapsed, (this.start_ || {}).direction));
  }

  tick() {
    const now = Date.now() / 1000;
    for (const node of this.timeline.querySelectorAll(".item.pending .since")) {
      node.textContent = `since ${duration(now - Number(node.dataset.ts))}`;
    }
    if (this.status === "running" && this.figures && this.timeCard) {  // counted time goes on between events
      const last = this.items.filter(Boolean).at(-1);
      const paused = last && last.type === "pause";
      const elapsed = (last?.elapsed_s || 0) + (paused || !last?.ts ? 0 : now - last.ts);
      this.timeCard.querySelector(".value").textContent = duration(elapsed);
    }
  }

  // -- the scaffold's own view -------------------------------------------------------------------
  async loadScaffold() {
    const pane = this.panes.scaffold;
    pane.replaceChildren(el("p", { class: "muted" }, "Loading…"));
    let data;
    try { data = await getJSON(api("scaffold", this.runId)); }
    catch (error) { pane.replaceChildren(el("p", { class: "problem" }, error.message)); return; }
    if (data.kind === "aide") pane.replaceChildren(...aideView(data, this.runId));
    else if (data.kind === "modular") pane.replaceChildren(...modularView(data));
    else pane.replaceChildren(el("p", { class: "muted" }, data.events.length ? `${data.events.length} scaffold events (this scaffold keeps no view of its own the viewer knows):`
      : "This scaffold logged no events of its own."), ...data.events.map((e) => el("pre", { class: "short" }, pretty(without(e, ["ts", "type"])))));
  }

  // -- the workspace -----------------------------------------------------------------------------
  async loadWorkspace() {
    const pane = this.panes.workspace;
    pane.replaceChildren(el("p", { class: "muted" }, "Loading…"));
    let data;
    try { data = await getJSON(api("workspace", this.runId)); }
    catch (error) { pane.replaceChildren(el("p", { class: "problem" }, error.message)); return; }
    const list = el("div", { class: "filelist" });
    const view = el("div", {}, el("p", { class: "muted" }, "Choose a file."));
    const showSame = el("input", { type: "checkbox", onchange: () => fill() });
    const fill = () => {
      list.replaceChildren(...data.files.filter((f) => showSame.checked || f.status !== "same").map((f) => {
        const row = el("div", { "data-path": f.path, onclick: () => {
          for (const r of list.children) r.classList.toggle("on", r === row);
          this.openFile(f, view);
        } }, el("span", { class: "name", title: f.path }, f.path),
          f.status === "unknown" ? el("span", { class: "muted" }, f.note || `${count(f.size)} bytes`) : el("span", { class: `badge ${f.status}` }, f.status));
        return row;
      }));
      if (!list.children.length) list.append(el("div", { class: "muted" }, "No file changed."));
    };
    fill();
    const changed = data.files.filter((f) => f.status !== "same").length;
    pane.replaceChildren(
      ...data.notes.map((n) => el("div", { class: "notice" }, n)),
      el("p", {}, `${data.files.length} files in ${data.workspace || "(no workspace)"}; ${data.has_start ? `${changed} differ from the start` : "no starting copy to compare with"}. `,
        el("label", { class: "muted" }, showSame, " show unchanged files")),
      el("div", { class: "files" }, list, view));
  }

  async openFile(file, view) {
    view.replaceChildren(el("p", { class: "muted" }, "Loading…"));
    let data;
    try { data = await getJSON(api("file", this.runId, `?path=${encodeURIComponent(file.path)}`)); }
    catch (error) { view.replaceChildren(el("p", { class: "problem" }, error.message)); return; }
    const parts = [el("h3", {}, file.path)];
    if (data.problem) parts.push(el("p", { class: "notice" }, data.problem));
    if (data.diff !== undefined && data.diff !== null) {
      parts.push(data.diff ? diffView(data.diff) : el("p", { class: "muted" }, "Unchanged from the start."));
    }
    if (data.text !== undefined && data.text !== null && (!data.diff || file.status === "unknown")) {
      parts.push(el("h3", {}, "as it ended"), folded(data.text, 200));
    }
    view.replaceChildren(...parts);
  }
}

// ---------------------------------------------------------------------------------------------
// pieces of the run page

function sinceNode(ts) {
  return el("span", { class: "since", "data-ts": ts }, ts ? `since ${duration(Date.now() / 1000 - ts)}` : "");
}

function kv(object) {
  return Object.entries(object).filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => el("span", { class: "pair" }, el("span", { class: "k" }, k), " ",
                        el("span", { class: "v" }, typeof v === "object" ? JSON.stringify(v) : String(v))));
}
const without = (object, keys) => Object.fromEntries(Object.entries(object).filter(([k]) => !keys.includes(k)));
const limitsText = (l) => !l ? "none" : [l.time_s ? duration(l.time_s) : null, l.tokens ? `${count(l.tokens)} tokens` : null,
  l.cost_usd ? dollars(l.cost_usd) : null].filter(Boolean).join(", ") || "none";

function messageBox(m, position, label, fresh) {
  m = m || {};
  const role = label || m.role || "?";
  const where = position === null || position === undefined ? "" : `message ${position}${fresh ? " · new" : ""}`;
  const head = el("div", { class: "role" }, el("span", {}, role + (m.name ? ` (${m.name})` : "")), el("span", { class: "muted" }, where));
  const box = el("div", { class: `msg ${m.role || ""}` }, head);
  if (m.reasoning) box.append(el("div", { class: "toolcall muted" }, "reasoning:"), folded(m.reasoning, 12));
  if (m.content || !(m.tool_calls || []).length) box.append(folded(m.content || "(empty)", 24));
  for (const c of m.tool_calls || []) {
    const args = c.parse_error ? `${c.raw_arguments}   [not valid: ${c.parse_error}]` : JSON.stringify(c.arguments, null, 1);
    const text = c.arguments && typeof c.arguments.command === "string" && Object.keys(c.arguments).length === 1
      ? c.arguments.command : c.arguments && typeof c.arguments.code === "string" && Object.keys(c.arguments).length === 1 ? c.arguments.code : args;
    box.append(el("div", { class: "toolcall" }, `→ ${c.name}`, el("span", { class: "muted" }, c.id ? `  (${c.id})` : "")), folded(text, 16));
  }
  return box;
}

function scaffoldGist(e) {
  const rest = without(e, ["ts", "elapsed_s", "type", "kind"]);
  return Object.entries(rest).map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join("  ");
}

function bestScore(scores, direction) {
  let best = null;
  for (const s of scores) {
    if (!s.valid || s.raw === null) continue;
    if (!best || (direction === "max" ? s.raw > best.raw : s.raw < best.raw)) best = s;
  }
  return best;
}

function usageBar(fraction) {
  const inner = el("div");
  inner.style.width = `${Math.min(100, Math.max(0, fraction * 100)).toFixed(1)}%`;
  return el("div", { class: `bar ${fraction >= 1 ? "full" : fraction >= 0.8 ? "high" : ""}` }, inner);
}

// Score over counted time: each entry holds until the next (steps), with the best so far dashed.
function scoreChart(scores, limit, elapsed, direction) {
  const valid = scores.filter((s) => s.valid && s.raw !== null);
  if (!scores.length) return el("div", { class: "muted" }, "score over time: no score yet.");
  const normalised = valid.every((s) => s.normalized !== null && s.normalized !== undefined);
  const value = (s) => normalised ? s.normalized : s.raw;
  const W = 1000, H = 160, L = 52, R = 14, T = 10, B = 26;
  // The run's own span; the time limit too when the run came near it (a 2-second run of a 2-hour
  // limit would otherwise be a line at the left edge).
  const span = Math.max(elapsed || 0, ...scores.map((s) => s.elapsed_s || 0));
  const showLimit = limit && limit <= span * 1.5;
  const tMax = (showLimit ? Math.max(limit, span) : span * 1.04) || 1;  // room for a last step at the end
  const values = valid.map(value);
  let yMin = normalised ? 0 : Math.min(...values), yMax = normalised ? Math.max(1, ...values) : Math.max(...values);
  if (!values.length) { yMin = 0; yMax = 1; }
  if (yMax === yMin) { yMax = yMin + 1; }
  yMax += (yMax - yMin) * 0.05;
  const x = (t) => L + (W - L - R) * (t / tMax);
  const y = (v) => T + (H - T - B) * (1 - (v - yMin) / (yMax - yMin));
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": "score over time" });
  for (const v of niceTicks(yMin, yMax)) {
    svg.append(el("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }),
      el("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, shortNum(v)));
  }
  for (const t of timeTicks(tMax)) {
    svg.append(el("text", { x: x(t), y: H - 8, "text-anchor": t === 0 ? "start" : "middle" }, duration(t)));
  }
  svg.append(el("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }), el("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
  if (showLimit) svg.append(el("line", { class: "limitline", x1: x(limit), x2: x(limit), y1: T, y2: H - B }));
  const end = Math.min(tMax, Math.max(elapsed || 0, ...valid.map((s) => s.elapsed_s || 0)));
  const steps = (points) => points.map((p, i) => {
    const next = i + 1 < points.length ? points[i + 1][0] : end;
    return `${i ? "L" : "M"}${x(p[0])},${y(p[1])} L${x(next)},${y(p[1])}`;
  }).join(" ");
  const pts = valid.map((s) => [s.elapsed_s || 0, value(s)]);
  let best = null;
  const bestPts = valid.map((s) => {
    if (best === null || (direction === "max" ? s.raw > best.raw : s.raw < best.raw)) best = s;
    return [s.elapsed_s || 0, value(best)];
  });
  if (pts.length) svg.append(el("path", { class: "best", d: steps(bestPts) }), el("path", { class: "step", d: steps(pts) }));
  for (const s of scores) {
    const label = `${s.trigger} score at ${duration(s.elapsed_s)}: ` + (s.valid ? `raw ${shortNum(s.raw)}, normalised ${num(s.normalized)}` : `invalid (${(s.message || {}).error || "no reason"})`);
    if (s.valid && s.raw !== null) {
      svg.append(el("circle", { class: `dot ${s.trigger}`, cx: x(s.elapsed_s || 0), cy: y(value(s)), r: 4 }, el("title", {}, label)));
    } else {
      const cx = x(s.elapsed_s || 0), cy = H - B - 6;
      svg.append(el("g", { class: "invalid" }, el("line", { x1: cx - 4, x2: cx + 4, y1: cy - 4, y2: cy + 4 }),
        el("line", { x1: cx - 4, x2: cx + 4, y1: cy + 4, y2: cy - 4 }), el("title", {}, label)));
    }
  }
  const what = normalised ? "normalised score (0 = starting solution, 1 = reference)" : "raw score";
  return el("div", {}, el("div", { class: "legend" }, el("span", {}, `score over counted time: ${what}`),
    el("span", {}, el("span", { class: "swatch" }), "each score until the next"), el("span", {}, el("span", { class: "swatch best" }), "best so far"),
    el("span", {}, "× invalid"), showLimit ? el("span", {}, "red dashes: time limit") : limit ? el("span", {}, `time limit ${duration(limit)}, beyond the right edge`) : null), svg);
}

// Round durations from 0 to hi: seconds, minutes, hours.
function timeTicks(hi) {
  const steps = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800];
  const step = steps.find((s) => hi / s <= 6) || hi / 5;
  const ticks = [];
  for (let t = 0; t <= hi + step * 1e-9; t += step) ticks.push(t);
  return ticks;
}

// About five round values from lo to hi (0, 0.25, 0.5, ...; 0, 30 s, 1 min, ...).
function niceTicks(lo, hi) {
  const raw = (hi - lo) / 5;
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(6)));
  return ticks;
}

function aideView(data, runId) {
  if (data.problem) return [el("p", { class: "problem" }, data.problem)];
  const nodes = data.nodes;
  const byParent = new Map();
  for (const n of nodes) {
    const parent = nodes.some((m) => m.id === n.parent_id) ? n.parent_id : null;
    if (!byParent.has(parent)) byParent.set(parent, []);
    byParent.get(parent).push(n);
  }
  const good = nodes.filter((n) => !n.is_buggy).length;
  const best = nodes.find((n) => n.id === data.best);
  const tree = (parent) => el("ul", { class: parent === null ? "tree root" : "tree" }, (byParent.get(parent) || []).map((n) => {
    const body = el("div", { class: "body", hidden: true });
    const head = el("div", { class: "head", onclick: () => {
      if (!body.childNodes.length) body.append(...aideNode(n));
      body.hidden = !body.hidden;
    } }, el("span", { class: "badge" }, `#${n.step}`), el("span", {}, n.stage), el("span", {}, n.is_buggy ? "buggy" : "good"),
      el("span", {}, `metric ${n.metric === null ? "–" : shortNum(n.metric)}`), n.exc_type ? el("span", { class: "exit-bad" }, n.exc_type) : null,
      el("span", { class: "muted" }, duration(n.exec_time)), n.id === data.best ? el("strong", {}, "best") : null,
      el("span", { class: "muted" }, firstLine(n.plan, 90)));
    return el("li", { class: ["node", n.is_buggy ? "buggy" : "good", n.id === data.best ? "best" : ""].join(" ") }, head, body, tree(n.id));
  }));
  return [
    el("p", {}, `AIDE search tree: ${nodes.length} nodes, ${good} good; ${data.direction === "min" ? "lower" : "higher"} metric is better`
      + (best ? `; best: #${best.step} (${shortNum(best.metric)})` : "") + (data.solution_file ? `; solution file ${data.solution_file}` : "") + ". ",
      data.tree_html ? el("a", { href: `/tree/${encodePath(runId)}`, target: "_blank" }, "AIDE's own tree.html") : null),
    nodes.length ? tree(null) : el("p", { class: "muted" }, "No node yet."),
    data.events.length ? el("h3", {}, "other AIDE events") : null,
    ...data.events.map((e) => el("div", { class: "mono" }, `${duration(e.elapsed_s)}  ${e.kind}  ${scaffoldGist(e)}`)),
  ];
}

function aideNode(n) {
  const scoring = n.score_valid === null ? null : `official score: ${n.score_valid ? shortNum(n.score) : "invalid"}`
    + (Object.keys(n.score_message || {}).length ? `\n${pretty(n.score_message)}` : "");
  return [
    el("div", { class: "kv" }, kv({ id: n.id, parent: n.parent_id, "debug depth": n.debug_depth, "exit code": n.exit_code,
      "metric from": n.metric_source, "review by": n.review_mode, "changed files": (n.changed_files || []).join(", "), error: n.error })),
    el("h3", {}, "plan"), folded(n.plan || "(none)", 12), el("h3", {}, "code"), folded(n.code || "(none)", 30),
    el("h3", {}, "execution output"), folded(n.output || "(none)", 16),
    scoring ? el("h3", {}, "scoring") : null, scoring ? el("pre", {}, scoring) : null,
    el("h3", {}, "review"), folded(n.analysis || "(none)", 10),
  ];
}

function modularView(data) {
  const rows = data.steps.map((s) => {
    const detail = el("tr", { hidden: true }, el("td", { colspan: 5 },
      ...(s.option_messages || []).map((m, i) => el("div", {}, el("h3", {}, `option ${i}${i === s.chosen ? " (chosen)" : ""}`), messageBox(m, null, "assistant"))),
      ...s.judging.map((j) => el("div", { class: "mono" }, `judge attempt ${j.attempt}: ${j.error ? "failed: " + j.error : `chose option ${j.choice}`}`)),
      ...s.notes.map((n) => el("div", { class: "mono" }, `${n.kind}  ${scaffoldGist(without(n, ["step"]))}`))));
    const expandable = (s.option_messages || []).length || s.judging.length || s.notes.length;
    const row = el("tr", { class: expandable ? "run" : "", onclick: () => { if (expandable) detail.hidden = !detail.hidden; } },
      el("td", {}, s.step), el("td", {}, s.options ?? "–"), el("td", {}, s.chosen ?? "–"), el("td", { class: "mono" }, (s.calls || []).join(", ")),
      el("td", { class: "muted" }, [s.judging.length ? `${s.judging.length} judge calls` : "", s.notes.map((n) => n.kind).join(", ")].filter(Boolean).join("; ")));
    return [row, detail];
  });
  return [
    el("p", {}, `Modular agent: ${data.steps.length} steps. Each step generates options, chooses one and runs its tool calls; a step with several options shows them here.`),
    el("table", { class: "plain runs" }, el("tr", {}, ["step", "options", "chosen", "tool calls", "notes"].map((h) => el("th", {}, h))), rows.flat()),
    data.events.length ? el("h3", {}, "other events") : null,
    ...data.events.map((e) => el("div", { class: "mono" }, `${duration(e.elapsed_s)}  ${e.kind}  ${scaffoldGist(e)}`)),
  ];
}

function diffView(text) {
  const pre = el("pre", { class: "diff" });
  for (const line of text.split("\n")) {
    const cls = line.startsWith("@@") ? "hunk" : line.startsWith("+") && !line.startsWith("+++") ? "add"
      : line.startsWith("-") && !line.startsWith("---") ? "del" : null;
    pre.append(cls ? el("span", { class: cls }, line) : line + "\n");
  }
  return pre;
}

// ---------------------------------------------------------------------------------------------

const path = decodeURIComponent(location.pathname);
if (path.startsWith("/run/")) showRun(path.slice(4));
else showRuns();
