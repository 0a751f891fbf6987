// The gateway's API as the logged-in user: the session cookie goes with every call, and so does the web view's
// header, without which the gateway ignores the cookie (a page of another site cannot send it).
export const HEADERS = { "X-K8n-UI": "1", Accept: "application/json" };

export class ApiError extends Error {
  constructor(status, message, reason = "") {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}

function expired() {
  location.assign("/ui/login");  // the session ended (logged out, token expired or revoked)
}

async function failure(r) {
  let status = {};
  try { status = await r.json(); } catch { /* not a Status */ }
  if (r.status === 401) expired();
  return new ApiError(r.status, status.message || r.statusText, status.reason || "");
}

export async function request(path, { method = "GET", body, signal } = {}) {
  const headers = { ...HEADERS };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, signal, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body) });
  if (!r.ok) throw await failure(r);
  return r.json();
}

// A streamed response (a watch, a followed log) chunk by chunk: onText(text) for each decoded piece.
export async function stream(path, onText, signal) {
  const r = await fetch(path, { headers: HEADERS, signal, credentials: "same-origin" });
  if (!r.ok) throw await failure(r);
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      onText(decoder.decode(value, { stream: true }));
    }
  } finally {
    reader.cancel().catch(() => {});  // the connection goes back (a browser keeps 6 per host)
  }
}

// A resource's collection path: /api/v1[/namespaces/NS]/pods or /apis/GROUP/VERSION[/namespaces/NS]/PLURAL.
export function collectionPath(res, namespace) {
  const base = res.group ? `/apis/${res.group}/${res.version}` : `/api/${res.version}`;
  const ns = res.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : "";
  return `${base}${ns}/${res.plural}`;
}

export function objectPath(res, obj) {
  const m = obj.metadata;
  return `${collectionPath(res, res.namespaced ? m.namespace : "")}/${encodeURIComponent(m.name)}`;
}
