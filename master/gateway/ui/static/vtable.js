// A table that renders only the rows in view (plus a margin): a tall spacer gives the scrollbar its length and a
// pool of row elements is moved and refilled as it scrolls, so 3,000 or 30,000 rows cost the same per frame.
// Each row is a <div role="row" data-key="namespace/name">; cells only change their text when it differs.
const ROW = 26;  // px, as in style.css
const MARGIN = 10;

export class VTable {
  // columns: [{title, width (CSS grid track), cell(row) -> string, cls?(row) -> class name}]
  constructor(host, columns, onSelect) {
    this.columns = columns;
    this.onSelect = onSelect;
    this.rows = [];
    this.selected = null;
    host.replaceChildren();
    const tracks = columns.map((c) => c.width || "1fr").join(" ");
    this.head = el("div", "vt-head");
    this.head.setAttribute("role", "row");
    this.head.style.gridTemplateColumns = tracks;
    for (const c of columns) this.head.append(el("div", "vt-cell", c.title));
    this.scroller = el("div", "vt-scroll");
    this.spacer = el("div", "vt-spacer");
    this.layer = el("div", "vt-layer");
    this.layer.setAttribute("role", "rowgroup");
    this.spacer.append(this.layer);
    this.scroller.append(this.spacer);
    this.empty = el("div", "vt-empty");
    host.append(this.head, this.empty, this.scroller);
    this.tracks = tracks;
    this.pool = [];
    this.scroller.addEventListener("scroll", () => this.paint(), { passive: true });
    this.layer.addEventListener("click", (e) => {
      const row = e.target.closest("[data-key]");
      if (row) this.onSelect?.(row.dataset.key);
    });
    new ResizeObserver(() => this.paint()).observe(this.scroller);
  }

  setRows(rows, emptyText = "Nothing here.") {
    this.rows = rows;
    this.empty.textContent = rows.length ? "" : emptyText;
    this.empty.hidden = rows.length > 0;
    this.spacer.style.height = `${rows.length * ROW}px`;
    this.paint();
  }

  select(key) {
    this.selected = key;
    this.paint();
  }

  paint() {
    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW) - MARGIN);
    const last = Math.min(this.rows.length, Math.ceil((top + height) / ROW) + MARGIN);
    this.layer.style.transform = `translateY(${first * ROW}px)`;
    const n = last - first;
    while (this.pool.length < n) this.pool.push(this.makeRow());
    for (let i = 0; i < this.pool.length; i++) {
      const r = this.pool[i];
      if (i >= n) {
        if (r.el.parentNode) r.el.remove();
        continue;
      }
      if (!r.el.parentNode) this.layer.append(r.el);
      this.fill(r, this.rows[first + i]);
    }
  }

  makeRow() {
    const row = el("div", "vt-row");
    row.setAttribute("role", "row");
    row.style.gridTemplateColumns = this.tracks;
    const cells = this.columns.map(() => row.appendChild(el("div", "vt-cell")));
    return { el: row, cells, key: null, texts: [], classes: [] };
  }

  fill(r, row) {
    if (r.key !== row.key) {
      r.key = row.key;
      r.el.dataset.key = row.key;
    }
    r.el.classList.toggle("selected", row.key === this.selected);
    this.columns.forEach((c, i) => {
      const text = c.cell(row);
      if (r.texts[i] !== text) {
        r.texts[i] = text;
        r.cells[i].textContent = text;
        r.cells[i].title = text;
      }
      const cls = c.cls ? c.cls(row) : "";
      if (r.classes[i] !== cls) {
        r.classes[i] = cls;
        r.cells[i].className = cls ? `vt-cell ${cls}` : "vt-cell";
      }
    });
  }
}

export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
