// The web view: one tab at a time (its resources listed and watched), rendered at most once per animation frame
// however many watch events arrive, through a table that draws only the rows in view.
import { ApiError, request } from "./api.js";
import { Detail } from "./detail.js";
import { VIEWS, RES } from "./views.js";
import { VTable } from "./vtable.js";
import { Collection } from "./watch.js";

const METRICS_MS = 5000;
const TICK_MS = 10000;  // ages move on
const OTHER = "\u0000other";  // the namespace picker's "other…"

const $ = (id) => document.getElementById(id);
const state = { view: null, namespace: "", filter: "", collections: {}, nodeMetrics: new Map(), metricsVersion: 0,
  table: null, rows: [], sig: "", marked: new Set() };
const detail = new Detail($("detail"));
let frame = 0;
let metricsTimer = 0;

export function schedule() {
  frame ||= requestAnimationFrame(render);
}

function matches(row, words) {
  let hay = state.hay.get(row.obj);  // an object's text, computed once (a change brings a new object)
  if (hay === undefined) {
    hay = state.view.columns.map((c) => c.cell(row)).join(" ").toLowerCase();
    state.hay.set(row.obj, hay);
  }
  return words.every((w) => hay.includes(w));
}

function render() {
  frame = 0;
  const v = state.view;
  const colls = v.resources.map((p) => state.collections[p]);
  const sig = `${colls.map((c) => c.version).join(",")}|${state.filter}|${state.metricsVersion}`;
  if (sig !== state.sig) {
    state.sig = sig;
    let rows = v.rows(state.collections, state);
    const total = rows.length;
    const words = state.filter.toLowerCase().split(/\s+/).filter(Boolean);
    if (words.length) rows = rows.filter((r) => matches(r, words));
    state.rows = rows;
    const synced = colls.every((c) => c.synced);
    const errors = colls.filter((c) => c.error).map((c) => `${c.res.plural}: ${c.error.message}`);
    state.table.setRows(rows, errors.length ? "Not shown (see above)." : !synced ? "Listing…"
      : total ? "Nothing matches the filter." : "Nothing here.");
    $("status").textContent = errors.length ? errors.join("; ")
      : `${words.length ? `${rows.length} of ` : ""}${total} ${v.title.toLowerCase()}${synced ? " · live" : " · listing…"}`;
    $("status").classList.toggle("error", errors.length > 0);
    if (detail.key) {
      const row = rows.find((r) => r.key === detail.key);
      if (row) detail.update(row.obj);
      else if (synced && v.rows(state.collections, state).every((r) => r.key !== detail.key)) detail.update(null);
    }
    mark(v.id, rows.length > 0, synced);
  } else {
    state.table.paint();
  }
}

// performance marks the benchmark reads: first rows on screen, and everything listed and on screen
function mark(view, anyRows, synced) {
  for (const [name, done] of [[`k8n:${view}:first-rows`, anyRows], [`k8n:${view}:listed`, synced]]) {
    if (done && !state.marked.has(name)) {
      state.marked.add(name);
      performance.mark(name);
    }
  }
}

async function pollMetrics(view) {
  try {
    const doc = await request("/apis/metrics.k8s.io/v1beta1/nodes");
    state.nodeMetrics = new Map(doc.items.map((m) => [m.metadata.name, m.usage]));
    state.metricsVersion++;
    schedule();
  } catch {
    state.nodeMetrics = new Map();  // not served, or not for this user: usage shows as –
  }
  if (state.view === view) metricsTimer = setTimeout(() => pollMetrics(view), METRICS_MS);
}

function open(id) {
  const view = VIEWS.find((v) => v.id === id) || VIEWS[0];
  for (const c of Object.values(state.collections)) c.stop();
  clearTimeout(metricsTimer);
  detail.close();  // its object belongs to the tab it was opened from
  state.view = view;
  state.hay = new WeakMap();
  state.sig = "";
  state.collections = Object.fromEntries(view.resources.map((p) => [p, new Collection(RES[p], state.namespace, schedule)]));
  state.table = new VTable($("table"), view.columns, select);
  for (const b of $("tabs").querySelectorAll("button")) b.classList.toggle("active", b.dataset.view === view.id);
  if (view.metrics) pollMetrics(view);
  history.replaceState(null, "", `#${view.id}${state.namespace ? `/${state.namespace}` : ""}`);
  schedule();
}

function select(key) {
  const row = state.rows.find((r) => r.key === key);
  if (!row) return;
  state.table.select(key);
  detail.open(key, row.res, row.obj);
}

async function namespaces() {
  const pick = $("namespace");
  try {
    const doc = await request("/api/v1/namespaces");
    const names = doc.items.map((n) => n.metadata.name).sort();
    pick.replaceChildren(new Option("all namespaces", ""), ...names.map((n) => new Option(n, n)));
    pick.value = state.namespace;
  } catch {  // this user may not list namespaces: name one
    const names = [...new Set(["", state.namespace])];
    pick.replaceChildren(...names.map((n) => new Option(n || "all namespaces", n)), new Option("other…", OTHER));
    pick.value = state.namespace;
  }
}

function start() {
  const [view, ns] = location.hash.slice(1).split("/");
  state.namespace = ns || "";
  for (const v of VIEWS) {
    const b = document.createElement("button");
    b.textContent = v.title;
    b.dataset.view = v.id;
    b.addEventListener("click", () => open(v.id));
    $("tabs").append(b);
  }
  $("filter").addEventListener("input", (e) => {
    state.filter = e.target.value;
    schedule();
  });
  $("namespace").addEventListener("focus", namespaces);
  $("namespace").addEventListener("change", (e) => {
    const ns = e.target.value === OTHER ? prompt("Namespace") : e.target.value;
    if (ns === null) {
      e.target.value = state.namespace;
      return;
    }
    state.namespace = ns.trim();
    namespaces();
    open(state.view.id);
  });
  $("logout").addEventListener("click", async () => {
    await request("/ui/logout", { method: "POST" }).catch(() => {});
    location.assign("/ui/login");
  });
  const who = () => request("/ui/session").then((s) => { $("user").textContent = s.username; })
    .catch((e) => { if (!(e instanceof ApiError)) setTimeout(who, 1000); });  // a network error: again
  who();
  setTimeout(namespaces, 1000);  // after the first screen's list (the gateway answers one request at a time)
  setInterval(() => { state.sig = ""; schedule(); }, TICK_MS);
  open(view);
}

start();
