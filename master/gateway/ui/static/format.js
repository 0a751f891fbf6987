// Kubernetes quantities, ages and kubectl's pod status, for the tables.
const SUFFIX = { n: 1e-9, u: 1e-6, m: 1e-3, "": 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };

export function quantity(q) {
  if (q === undefined || q === null) return NaN;
  const m = /^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$/.exec(String(q).trim());
  if (!m || !(m[2] in SUFFIX)) return NaN;
  return parseFloat(m[1]) * SUFFIX[m[2]];
}

export function cores(n) {
  if (!Number.isFinite(n)) return "–";
  return n < 1 ? `${Math.round(n * 1000)}m` : `${+n.toFixed(2)}`;
}

export function bytes(n) {
  if (!Number.isFinite(n)) return "–";
  for (const [unit, size] of [["Ti", 2 ** 40], ["Gi", 2 ** 30], ["Mi", 2 ** 20], ["Ki", 2 ** 10]]) {
    if (n >= size) return `${+(n / size).toFixed(1)}${unit}`;
  }
  return `${n}`;
}

export function age(timestamp, now = Date.now()) {
  if (!timestamp) return "";
  const s = Math.max(0, Math.floor((now - Date.parse(timestamp)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

// kubectl get pods' STATUS column
export function podStatus(pod) {
  const st = pod.status || {};
  let reason = st.reason || st.phase || "Unknown";
  const inits = st.initContainerStatuses || [];
  for (let i = 0; i < inits.length; i++) {
    const s = inits[i].state || {};
    if (s.terminated && s.terminated.exitCode === 0) continue;
    if (s.terminated) reason = `Init:${s.terminated.reason || `ExitCode:${s.terminated.exitCode}`}`;
    else if (s.waiting && s.waiting.reason && s.waiting.reason !== "PodInitializing") reason = `Init:${s.waiting.reason}`;
    else reason = `Init:${i}/${(pod.spec.initContainers || []).length}`;
    return pod.metadata.deletionTimestamp ? "Terminating" : reason;
  }
  for (const c of st.containerStatuses || []) {
    const s = c.state || {};
    if (s.waiting && s.waiting.reason) reason = s.waiting.reason;
    else if (s.terminated) reason = s.terminated.reason || `ExitCode:${s.terminated.exitCode}`;
  }
  return pod.metadata.deletionTimestamp ? "Terminating" : reason;
}

export function podReady(pod) {
  const all = (pod.spec?.containers || []).length;
  const ready = (pod.status?.containerStatuses || []).filter((c) => c.ready).length;
  return `${ready}/${all}`;
}

export function restarts(pod) {
  return (pod.status?.containerStatuses || []).reduce((n, c) => n + (c.restartCount || 0), 0);
}

export function condition(obj, type) {
  return (obj.status?.conditions || []).find((c) => c.type === type);
}
