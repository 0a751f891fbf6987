// JSON values as YAML (block style, as kubectl get -o yaml prints them); strings that YAML would read as something
// else are quoted.
const PLAIN = /^[A-Za-z0-9_./@(][A-Za-z0-9_./@()+=,:-]*( [A-Za-z0-9_./@()+=,:-]+)*$/;
const SPECIAL = /^(true|false|yes|no|on|off|null|~|y|n|[-+]?(\d[\d_]*(\.\d*)?|\.\d+)([eE][-+]?\d+)?|0x[0-9a-fA-F]+|\.inf|\.nan|\d{4}-\d\d-\d\d.*)$/i;

function scalar(v) {
  if (v === null || v === undefined) return "null";
  if (typeof v === "string") {
    if (v === "" || !PLAIN.test(v) || SPECIAL.test(v) || v.includes(": ") || v.endsWith(":")) return JSON.stringify(v);
    return v;
  }
  return String(v);
}

function isEmpty(v) {
  return (Array.isArray(v) && !v.length) || (v && typeof v === "object" && !Object.keys(v).length);
}

function lines(v, indent, out) {
  if (Array.isArray(v)) {
    for (const item of v) {
      if (item && typeof item === "object" && !isEmpty(item)) {
        const sub = [];
        lines(item, "", sub);
        out.push(`${indent}- ${sub[0]}`);
        for (const l of sub.slice(1)) out.push(`${indent}  ${l}`);
      } else {
        out.push(`${indent}- ${isEmpty(item) ? (Array.isArray(item) ? "[]" : "{}") : scalar(item)}`);
      }
    }
    return out;
  }
  for (const [k, item] of Object.entries(v)) {
    const name = scalar(k);
    if (isEmpty(item)) out.push(`${indent}${name}: ${Array.isArray(item) ? "[]" : "{}"}`);
    else if (item && typeof item === "object") {
      out.push(`${indent}${name}:`);
      lines(item, Array.isArray(item) ? indent : `${indent}  `, out);
    } else out.push(`${indent}${name}: ${scalar(item)}`);
  }
  return out;
}

export function toYaml(value) {
  if (value === null || typeof value !== "object") return `${scalar(value)}\n`;
  if (isEmpty(value)) return Array.isArray(value) ? "[]\n" : "{}\n";
  return `${lines(value, "", []).join("\n")}\n`;
}
