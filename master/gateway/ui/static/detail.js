// The side panel of one object: its YAML (live, from the watch), its history (the gateway's .../history, when it
// serves it) and, for a pod, its log tail (followed).
import { ApiError, objectPath, request, stream } from "./api.js";
import { el } from "./vtable.js";
import { toYaml } from "./yaml.js";

const LOG_TAIL = 500;  // lines asked for
const LOG_KEEP = 5000;  // lines kept on the page

function shown(obj) {
  const copy = structuredClone(obj);
  if (copy.metadata) delete copy.metadata.managedFields;  // as kubectl get -o yaml (without --show-managed-fields)
  return copy;
}

export class Detail {
  constructor(root) {
    this.root = root;
    this.title = root.querySelector("#detail-title");
    this.body = root.querySelector("#detail-body");
    this.tabs = root.querySelector("#detail-tabs");
    this.tab = "yaml";
    this.obj = null;
    this.abort = null;
    root.querySelector("#detail-close").addEventListener("click", () => this.close());
    this.tabs.addEventListener("click", (e) => {
      const b = e.target.closest("button[data-tab]");
      if (b) this.show(b.dataset.tab);
    });
  }

  get key() {
    return this.obj ? this.rowKey : null;
  }

  open(rowKey, res, obj) {
    this.rowKey = rowKey;
    this.res = res;
    this.obj = obj;
    this.root.hidden = false;
    this.setTitle(false);
    this.tabs.querySelector('[data-tab="logs"]').hidden = res.kind !== "Pod";
    this.show(res.kind !== "Pod" && this.tab === "logs" ? "yaml" : this.tab);
  }

  setTitle(deleted) {
    this.deleted = deleted;
    const m = this.obj.metadata;
    this.title.textContent = `${this.res.kind} ${m.namespace ? `${m.namespace}/` : ""}${m.name}${deleted ? " (deleted)" : ""}`;
  }

  close() {
    this.stopStream();
    this.obj = null;
    this.root.hidden = true;
  }

  // the watched object changed (or went away)
  update(obj) {
    if (!this.obj) return;
    if (!obj) {
      if (!this.deleted) this.setTitle(true);
      return;
    }
    if (this.deleted) this.setTitle(false);
    const changed = obj.metadata.resourceVersion !== this.obj.metadata.resourceVersion;
    this.obj = obj;
    if (changed && this.tab === "yaml") {
      const top = this.body.scrollTop;  // where the reader was
      this.show("yaml");
      this.body.scrollTop = top;
    }
  }

  stopStream() {
    this.abort?.abort();
    this.abort = null;
  }

  show(tab) {
    this.stopStream();
    this.tab = tab;
    for (const b of this.tabs.querySelectorAll("button")) b.classList.toggle("active", b.dataset.tab === tab);
    if (tab === "yaml") this.body.replaceChildren(el("pre", "yaml", toYaml(shown(this.obj))));
    else if (tab === "history") this.history();
    else if (tab === "logs") this.logs();
  }

  async history() {
    const box = el("div", "history", "Loading history…");
    this.body.replaceChildren(box);
    let doc;
    try {
      doc = await request(`${objectPath(this.res, this.obj)}/history`);
    } catch (e) {
      box.textContent = e instanceof ApiError && e.status === 404
        ? "No history: this gateway does not serve object history (or none is kept for this object)."
        : `History: ${e.message}`;
      return;
    }
    const items = [...(doc.items || [])].reverse();  // newest first
    const list = el("ul", "revisions");
    const view = el("pre", "yaml");
    const pick = (i) => {
      list.querySelectorAll("li").forEach((li, j) => li.classList.toggle("active", i === j));
      view.textContent = items[i].object ? toYaml(shown(items[i].object)) : "";
    };
    items.forEach((it, i) => {
      const who = [it.user, it.verb, it.fieldManager && `(${it.fieldManager})`].filter(Boolean).join(" ");
      const li = el("li", "", `rev ${it.revision} · ${it.time || ""} · ${it.type || ""} · ${who}`);
      li.addEventListener("click", () => pick(i));
      list.append(li);
    });
    box.replaceChildren(items.length ? list : el("p", "", "No revisions kept."), view);
    if (items.length) pick(0);
  }

  async logs() {
    const containers = (this.obj.spec?.containers || []).map((c) => c.name);
    const pick = el("select", "containers");
    for (const c of containers) pick.append(new Option(c, c));
    pick.hidden = containers.length < 2;
    const pre = el("pre", "logs");
    pre.id = "log";
    this.body.replaceChildren(pick, pre);
    const follow = () => {
      this.stopStream();
      pre.textContent = "";
      this.tailLog(pre, pick.value);
    };
    pick.addEventListener("change", follow);
    follow();
  }

  async tailLog(pre, container) {
    const abort = (this.abort = new AbortController());
    const path = `${objectPath(this.res, this.obj)}/log?follow=true&tailLines=${LOG_TAIL}` +
      `&container=${encodeURIComponent(container)}`;
    let pending = "";
    let frame = 0;
    const flush = () => {
      frame = 0;
      pre.append(pending);
      pending = "";
      if (pre.childNodes.length > 200) pre.normalize();
      const text = pre.textContent;
      const lines = text.split("\n");
      if (lines.length > LOG_KEEP) pre.textContent = lines.slice(-LOG_KEEP).join("\n");
      pre.scrollTop = pre.scrollHeight;
    };
    try {
      await stream(path, (text) => {
        pending += text;
        frame ||= requestAnimationFrame(flush);
      }, abort.signal);
      if (!abort.signal.aborted) pre.dataset.ended = "true";
    } catch (e) {
      if (!abort.signal.aborted) pre.append(`\n[${e.message}]\n`);
    }
  }
}
