// Where the bundle's gzipped bytes are: each part of the wasm (its functions grouped by crate,
// and its data) with what the gzipped wasm would lose without it. Prints figures; asserts
// nothing.
//   KEEP_NAMES=1 bash scripts/build.sh && node tests/bench/size-parts.mjs [WASM] [REGEX...]
// The build must keep the name section (KEEP_NAMES=1; scripts/build.sh strips it otherwise).
// Each REGEX is also measured as one part: the functions whose names match it wherever they
// are, e.g. 'serde' (serde's code and what its derives made in ours), 'fmt', 'btree'.
//
// Why leave-one-out: gzip shares its window across functions, so a part's own gzipped size
// overstates what removing it saves (its strings and patterns repeat elsewhere). Each part's
// figure here is gzip(all) - gzip(all but the part): what the bundle would lose, near enough,
// if the part were gone. The parts' figures do not add up to the total for the same reason.
// Only code bodies and data segments are counted (the wasm's type, import, export and element
// sections are a few KB, and nothing here can drop them), so figures are of about 95% of the
// wasm. Grouping is by the first crate in the function's name: a generic instantiated for one
// of our types counts where its name starts (`<invite_core::X as serde::Serialize>` is
// invite_core), and code inlined into a function counts as that function's.
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const args = process.argv.slice(2);
const file = args[0] && args[0].endsWith(".wasm") ? args.shift() : "build/index_bg.wasm";
const patterns = args;

/** The wasm's code bodies and data segments, with names where the name section has them. */
function wasmParts(bytes) {
  let at = 8;
  const leb = () => {
    let value = 0;
    let shift = 0;
    for (;;) {
      const b = bytes[at++];
      value += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if (b < 0x80) return value;
    }
  };
  // A data segment's offset: `i32.const n` or `global.get i`, then `end`. (Its immediate is
  // read, not scanned: a LEB byte can equal `end`'s 0x0b.)
  const skipConstExpr = () => {
    const op = bytes[at++];
    if (op !== 0x41 && op !== 0x23) throw new Error(`unexpected offset expression 0x${op.toString(16)}`);
    leb();
    if (bytes[at++] !== 0x0b) throw new Error("offset expression without end");
  };
  const name = () => {
    const n = leb();
    const s = Buffer.from(bytes.subarray(at, at + n)).toString("utf8");
    at += n;
    return s;
  };
  let imported = 0;
  const bodies = [];
  const data = [];
  const funcNames = new Map();
  const dataNames = new Map();
  while (at < bytes.length) {
    const id = bytes[at++];
    const size = leb();
    const end = at + size;
    if (id === 2) {
      // Imports: only the functions count, as they come first in the function index space.
      for (let i = leb(); i > 0; i--) {
        name();
        name();
        const kind = bytes[at++];
        if (kind === 0) {
          imported++;
          leb();
        } else if (kind === 1) {
          at++;
          const flags = leb();
          leb();
          if (flags & 1) leb();
        } else if (kind === 2) {
          const flags = leb();
          leb();
          if (flags & 1) leb();
        } else if (kind === 3) {
          at += 2;
        } else if (kind === 4) {
          at++;
          leb();
        }
      }
    } else if (id === 10) {
      for (let i = leb(); i > 0; i--) {
        const n = leb();
        bodies.push(bytes.subarray(at, at + n));
        at += n;
      }
    } else if (id === 11) {
      for (let i = leb(); i > 0; i--) {
        const flags = leb();
        if (flags === 2) leb();
        if (flags !== 1) skipConstExpr();
        const n = leb();
        data.push(bytes.subarray(at, at + n));
        at += n;
      }
    } else if (id === 0 && name() === "name") {
      while (at < end) {
        const sub = bytes[at++];
        const subEnd = leb() + at;
        if (sub === 1 || sub === 9) {
          const names = sub === 1 ? funcNames : dataNames;
          for (let i = leb(); i > 0; i--) {
            const index = leb();
            names.set(index, name());
          }
        }
        at = subEnd;
      }
    }
    at = end;
  }
  const parts = bodies.map((b, i) => ({ name: funcNames.get(i + imported) ?? `function ${i}`, bytes: b }));
  for (const [i, d] of data.entries()) parts.push({ name: `data ${dataNames.get(i) ?? i}`, bytes: d, data: true });
  return { parts, named: funcNames.size > 0 };
}

const gz = (chunks) => gzipSync(Buffer.concat(chunks), { level: 9 }).length;

/** The crate a function's name starts with (`core[1a2b]::fmt` is core), or a label for data. */
function group(part) {
  if (part.data) {
    return Buffer.from(part.bytes).includes('"openapi":"3.') ? "data: with the OpenAPI document" : "data: other";
  }
  const m = part.name.match(/(?:^|<|\s|&)(?:mut )?([a-z_][a-z0-9_]*)(?:\[[0-9a-f]+\])?::/);
  return m ? m[1] : "(unnamed: wasm-bindgen shims, exports)";
}

const { parts, named } = wasmParts(readFileSync(file));
if (!named) {
  console.error(`${file} has no function names: build it with KEEP_NAMES=1 bash scripts/build.sh`);
  process.exit(1);
}
const all = parts.map((p) => p.bytes);
const total = gz(all);
const raw = all.reduce((s, b) => s + b.length, 0);
/** What the gzipped whole loses without the parts `inPart` picks. */
const share = (inPart) => {
  const rest = parts.filter((p) => !inPart(p)).map((p) => p.bytes);
  const picked = parts.filter(inPart);
  return { gzip: total - gz(rest), raw: picked.reduce((s, p) => s + p.bytes.length, 0), n: picked.length };
};
const row = (label, r) =>
  console.log(`${String(r.gzip).padStart(8)} ${String(r.raw).padStart(9)} ${String(r.n).padStart(6)}  ${label}`);

console.log(`${file}: code and data ${raw} B, ${total} B gzipped (level 9)`);
console.log(`${"gzip -".padStart(8)} ${"raw".padStart(9)} ${"items".padStart(6)}  part (gzip -: what the gzipped code and data lose without it)`);
const groups = [...new Set(parts.map(group))];
const rows = groups.map((g) => [g, share((p) => group(p) === g)]).sort((a, b) => b[1].gzip - a[1].gzip);
for (const [g, r] of rows) if (r.gzip >= 300) row(g, r);
const small = rows.filter(([, r]) => r.gzip < 300);
if (small.length > 0) row(`${small.length} more parts under 300 B each`, share((p) => small.some(([g]) => g === group(p))));
for (const pattern of patterns) {
  const re = new RegExp(pattern);
  console.log(`\nfunctions matching /${pattern}/, wherever they are:`);
  row(`all of them`, share((p) => !p.data && re.test(p.name)));
  const largest = parts.filter((p) => !p.data && re.test(p.name)).sort((a, b) => b.bytes.length - a.bytes.length);
  for (const p of largest.slice(0, 8)) console.log(`${"".padStart(8)} ${String(p.bytes.length).padStart(9)} ${"".padStart(6)}  ${p.name.slice(0, 110)}`);
}
