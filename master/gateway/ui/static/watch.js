// One resource kept live: list (a small first chunk for the first screen, then larger ones, shown as they come), then watch from the list's
// resourceVersion with a streamed fetch, as client-go's reflector does. A stream that ends is resumed from the last
// revision seen (bookmarks keep it fresh); 410 Gone (the revision is no longer kept) means list again.
import { ApiError, collectionPath, request, stream } from "./api.js";

const FIRST_CHUNK = 250;
const CHUNK = 1000;
const RETRY_MS = [500, 1000, 2000, 5000];

export const key = (obj) => (obj.metadata.namespace ? `${obj.metadata.namespace}/` : "") + obj.metadata.name;

export class Collection {
  // res: {group, version, plural, namespaced}; onChange(): called after every batch of changes (cheap: the page
  // renders at most once per animation frame).
  constructor(res, namespace, onChange) {
    this.res = res;
    this.path = collectionPath(res, namespace);
    this.onChange = onChange;
    this.items = new Map();
    this.version = 0;  // bumped on every change, so views recompute only when something changed
    this.error = null;
    this.synced = false;
    this.rv = null;
    this.abort = new AbortController();
    this.run();
  }

  stop() {
    this.abort.abort();
  }

  changed() {
    this.version++;
    this.onChange();
  }

  async run() {
    let failures = 0;
    while (!this.abort.signal.aborted) {
      try {
        if (this.rv === null) await this.list();
        failures = 0;
        await this.watch();
      } catch (e) {
        if (this.abort.signal.aborted) return;
        if (e instanceof ApiError && e.status === 410) {
          this.rv = null;
          continue;
        }
        this.error = e;
        this.changed();
        if (e instanceof ApiError && (e.status === 403 || e.status === 404)) return;  // not for this user
        await new Promise((ok) => setTimeout(ok, RETRY_MS[Math.min(failures++, RETRY_MS.length - 1)]));
      }
    }
  }

  async list() {
    const first = !this.synced;
    const fresh = first ? this.items : new Map();
    let token = "";
    let rv = null;
    do {
      const q = `?limit=${token ? CHUNK : FIRST_CHUNK}${token ? `&continue=${encodeURIComponent(token)}` : ""}`;
      const page = await request(this.path + q, { signal: this.abort.signal });
      rv ??= page.metadata.resourceVersion;  // the snapshot the chunks belong to
      for (const obj of page.items) fresh.set(key(obj), obj);
      token = page.metadata.continue || "";
      if (first) this.changed();  // the first screen shows while the rest comes
    } while (token);
    this.items = fresh;
    this.rv = rv;
    this.error = null;
    this.synced = true;
    this.changed();
  }

  async watch() {
    const q = `?watch=1&allowWatchBookmarks=true&resourceVersion=${encodeURIComponent(this.rv)}`;
    let rest = "";
    await stream(this.path + q, (text) => {
      const lines = (rest + text).split("\n");
      rest = lines.pop();
      let any = false;
      for (const line of lines) {
        if (line) any = this.apply(JSON.parse(line)) || any;
      }
      if (any) this.changed();
    }, this.abort.signal);
  }

  apply(event) {
    const obj = event.object;
    if (event.type === "ERROR") {
      throw new ApiError(obj.code || 500, obj.message || "watch failed", obj.reason || "");
    }
    if (obj.metadata?.resourceVersion) this.rv = obj.metadata.resourceVersion;
    if (event.type === "BOOKMARK") return false;
    if (event.type === "DELETED") this.items.delete(key(obj));
    else this.items.set(key(obj), obj);
    return true;
  }
}
