// What each tab shows: the resources it watches (only the active tab's, as a browser keeps just 6 connections per
// host) and its columns, computed from the watched objects.
import { age, bytes, condition, cores, podReady, podStatus, quantity, restarts } from "./format.js";

const core = (plural, kind, namespaced = true) => ({ group: "", version: "v1", plural, kind, namespaced });
const apps = (plural, kind) => ({ group: "apps", version: "v1", plural, kind, namespaced: true });
export const RES = {
  pods: core("pods", "Pod"), nodes: core("nodes", "Node", false), services: core("services", "Service"),
  endpoints: core("endpoints", "Endpoints"), events: core("events", "Event"),
  namespaces: core("namespaces", "Namespace", false), deployments: apps("deployments", "Deployment"),
  statefulsets: apps("statefulsets", "StatefulSet"), daemonsets: apps("daemonsets", "DaemonSet"),
};

const nsCol = { title: "Namespace", width: "minmax(6em, 0.7fr)", cell: (r) => r.obj.metadata.namespace || "" };
const nameCol = { title: "Name", width: "minmax(6em, 1.6fr)", cell: (r) => r.obj.metadata.name };
const ageCol = { title: "Age", width: "5em", cell: (r) => age(r.obj.metadata.creationTimestamp) };
const statusClass = (text) => (/^(Running|Ready|Succeeded|Completed|complete|Active)$/.test(text) ? "ok"
  : /(Err|BackOff|Fail|NotReady|stalled|Unknown|Evicted|OOM)/.test(text) ? "bad" : "busy");

function byKey(a, b) {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

function rowsOf(coll, res, prefix = "") {
  const out = [];
  for (const [k, obj] of coll.items) out.push({ key: prefix + k, obj, res });
  return out;
}

// ---- rollout progress, in the words of kubectl rollout status ---------------------------------------------------

export function rollout(obj) {
  const s = obj.status || {};
  if ((obj.metadata.generation || 0) > (s.observedGeneration || 0)) return { text: "waiting for the controller", done: 0 };
  if (obj.kind === "DaemonSet") {
    const want = s.desiredNumberScheduled || 0;
    const updated = s.updatedNumberScheduled || 0;
    const avail = s.numberAvailable || 0;
    if (updated < want) return { text: `${updated} of ${want} updated`, done: updated / want };
    if (avail < want) return { text: `${avail} of ${want} available`, done: avail / want };
    return { text: "complete", done: 1 };
  }
  const want = obj.spec?.replicas ?? 1;
  const updated = s.updatedReplicas || 0;
  if (obj.kind === "StatefulSet") {
    const ready = s.readyReplicas || 0;
    if (s.updateRevision && s.currentRevision !== s.updateRevision && updated < want) {
      return { text: `${updated} of ${want} updated`, done: want ? updated / want : 1 };
    }
    if (ready < want) return { text: `${ready} of ${want} ready`, done: ready / want };
    return { text: "complete", done: 1 };
  }
  const progressing = condition(obj, "Progressing");
  if (progressing?.reason === "ProgressDeadlineExceeded") return { text: "stalled: progress deadline exceeded", done: 0 };
  const avail = s.availableReplicas || 0;
  if (updated < want) return { text: `${updated} of ${want} updated`, done: want ? updated / want : 1 };
  if ((s.replicas || 0) > updated) return { text: `${s.replicas - updated} old replicas terminating`, done: 0.9 };
  if (avail < updated) return { text: `${avail} of ${updated} available`, done: updated ? avail / updated : 1 };
  return { text: "complete", done: 1 };
}

function replicaCounts(obj) {
  const s = obj.status || {};
  if (obj.kind === "DaemonSet") {
    return [`${s.numberReady || 0}/${s.desiredNumberScheduled || 0}`, s.updatedNumberScheduled || 0, s.numberAvailable || 0];
  }
  return [`${s.readyReplicas || 0}/${obj.spec?.replicas ?? 1}`, s.updatedReplicas || 0, s.availableReplicas || 0];
}

// ---- nodes ------------------------------------------------------------------------------------------------------

function nodeStatus(node) {
  const ready = condition(node, "Ready");
  const text = ready?.status === "True" ? "Ready" : ready?.status === "False" ? "NotReady" : "Unknown";
  return node.spec?.unschedulable ? `${text},SchedulingDisabled` : text;
}

function usage(used, total, fmt) {
  const pct = total > 0 && Number.isFinite(used) ? ` (${Math.round((100 * used) / total)}%)` : "";
  return `${Number.isFinite(used) ? fmt(used) : "–"} / ${fmt(total)}${pct}`;
}

// ---- services ---------------------------------------------------------------------------------------------------

function ports(svc) {
  return (svc.spec?.ports || []).map((p) => `${p.port}${p.nodePort ? `:${p.nodePort}` : ""}/${p.protocol || "TCP"}`)
    .join(",");
}

export function endpointsText(ep) {
  const all = [];
  for (const s of ep?.subsets || []) {
    for (const a of s.addresses || []) {
      for (const p of s.ports || [{}]) all.push(p.port ? `${a.ip}:${p.port}` : a.ip);
    }
  }
  if (!all.length) return "<none>";
  return all.length > 3 ? `${all.slice(0, 3).join(",")} + ${all.length - 3} more` : all.join(",");
}

// ---- events -----------------------------------------------------------------------------------------------------

const eventTime = (e) => e.lastTimestamp || e.eventTime || e.firstTimestamp || e.metadata.creationTimestamp || "";

// ---- the tabs ---------------------------------------------------------------------------------------------------

export const VIEWS = [
  {
    id: "pods", title: "Pods", resources: ["pods"],
    columns: [nsCol, nameCol,
      { title: "Ready", width: "4em", cell: (r) => podReady(r.obj) },
      { title: "Status", width: "minmax(7em, 0.8fr)", cell: (r) => podStatus(r.obj), cls: (r) => statusClass(podStatus(r.obj)) },
      { title: "Restarts", width: "5em", cell: (r) => String(restarts(r.obj)) },
      { title: "Node", width: "minmax(7em, 1fr)", cell: (r) => r.obj.spec?.nodeName || "" },
      { title: "IP", width: "8em", cell: (r) => r.obj.status?.podIP || "" }, ageCol],
    rows: (c) => rowsOf(c.pods, RES.pods).sort(byKey),
  },
  {
    id: "nodes", title: "Nodes", resources: ["nodes"], metrics: true,
    columns: [nameCol,
      { title: "Status", width: "minmax(6em, 0.6fr)", cell: (r) => nodeStatus(r.obj), cls: (r) => statusClass(nodeStatus(r.obj)) },
      { title: "CPU used / allocatable", width: "minmax(6em, 1fr)",
        cell: (r) => usage(quantity(r.usage?.cpu), quantity(r.obj.status?.allocatable?.cpu), cores) },
      { title: "Memory used / allocatable", width: "minmax(7em, 1fr)",
        cell: (r) => usage(quantity(r.usage?.memory), quantity(r.obj.status?.allocatable?.memory), bytes) },
      { title: "Pods", width: "5em", cell: (r) => r.obj.status?.allocatable?.pods || "" },
      { title: "Version", width: "minmax(6em, 0.6fr)", cell: (r) => r.obj.status?.nodeInfo?.kubeletVersion || "" }, ageCol],
    rows: (c, ctx) => rowsOf(c.nodes, RES.nodes).map((r) => ({ ...r, usage: ctx.nodeMetrics.get(r.obj.metadata.name) }))
      .sort(byKey),
  },
  {
    id: "workloads", title: "Workloads", resources: ["deployments", "statefulsets", "daemonsets"],
    columns: [{ title: "Kind", width: "7em", cell: (r) => r.obj.kind || r.res.kind }, nsCol, nameCol,
      { title: "Ready", width: "5em", cell: (r) => replicaCounts(r.obj)[0] },
      { title: "Up-to-date", width: "6em", cell: (r) => String(replicaCounts(r.obj)[1]) },
      { title: "Available", width: "6em", cell: (r) => String(replicaCounts(r.obj)[2]) },
      { title: "Rollout", width: "minmax(6em, 1.2fr)", cell: (r) => rollout({ kind: r.res.kind, ...r.obj }).text,
        cls: (r) => statusClass(rollout({ kind: r.res.kind, ...r.obj }).text) }, ageCol],
    rows: (c) => ["deployments", "statefulsets", "daemonsets"]
      .flatMap((p) => rowsOf(c[p], RES[p], `${RES[p].kind}:`)).sort(byKey),
  },
  {
    id: "services", title: "Services", resources: ["services", "endpoints"],
    columns: [nsCol, nameCol,
      { title: "Type", width: "7em", cell: (r) => r.obj.spec?.type || "ClusterIP" },
      { title: "Cluster IP", width: "8em", cell: (r) => r.obj.spec?.clusterIP || "" },
      { title: "Ports", width: "minmax(6em, 0.7fr)", cell: (r) => ports(r.obj) },
      { title: "Endpoints", width: "minmax(7em, 1.5fr)", cell: (r) => endpointsText(r.endpoints),
        cls: (r) => (endpointsText(r.endpoints) === "<none>" ? "busy" : "") }, ageCol],
    rows: (c) => rowsOf(c.services, RES.services).map((r) => ({ ...r, endpoints: c.endpoints.items.get(r.key) }))
      .sort(byKey),
  },
  {
    id: "events", title: "Events", resources: ["events"],
    columns: [{ title: "Last seen", width: "5em", cell: (r) => age(eventTime(r.obj)) },
      { title: "Type", width: "5.5em", cell: (r) => r.obj.type || "", cls: (r) => (r.obj.type === "Warning" ? "bad" : "") },
      { title: "Reason", width: "minmax(7em, 0.6fr)", cell: (r) => r.obj.reason || "" },
      { title: "Object", width: "minmax(6em, 1fr)",
        cell: (r) => `${(r.obj.involvedObject?.kind || "").toLowerCase()}/${r.obj.involvedObject?.name || ""}` },
      { title: "Message", width: "minmax(8em, 3fr)", cell: (r) => r.obj.message || r.obj.note || "" },
      { title: "Count", width: "4em", cell: (r) => String(r.obj.count || 1) }, nsCol],
    rows: (c) => rowsOf(c.events, RES.events).map((r) => ({ ...r, t: eventTime(r.obj) }))
      .sort((a, b) => (a.t < b.t ? 1 : a.t > b.t ? -1 : byKey(a, b))),
  },
];
