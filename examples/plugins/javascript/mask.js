// walrelay plugin `mask-js`: redacts the values of chosen columns.
//
// The JavaScript twin of plugins/mask in its `redact` mode, with the same configuration:
//
//     {"columns": ["public.customers.email", "*.phone"], "text": "****"}
//
// - `columns` (required): patterns of `column`, `table.column` or `schema.table.column`, matched
//   against the end of a column's full name; `*` matches any run of characters within one part.
// - `text` (default `****`) replaces every non-null value of a matching column, in `before` and
//   `after`. `null` stays `null`; an unchanged TOASTed value stays unchanged.
// - A masked column whose type is not text, varchar or bpchar is described as `text` from then
//   on: the events of its table refer to a derived descriptor, sent once, whose id counts down
//   from 2^32 - 1 (skipping ids the relay sent).

const NAME = "mask-js";
const VERSION = "0.1.0";
const KNOWN_KEYS = ["columns", "mode", "text"];
const TEXT_OIDS = [25, 1043, 1042]; // text, varchar, bpchar
const MAX_ID = 0xffffffff;

function kind(v) {
  if (v === null || v === undefined) return "null";
  if (typeof v === "boolean") return "a boolean";
  if (typeof v === "number") return "a number";
  if (typeof v === "string") return "a string";
  if (Array.isArray(v)) return "a list";
  return "an object";
}

function parseConfig(text) {
  let config = null;
  if (text.trim() !== "") {
    try {
      config = JSON.parse(text);
    } catch (e) {
      throw `configuration is not valid JSON: ${e.message}`;
    }
  }
  if (config === null || typeof config !== "object" || Array.isArray(config)) {
    throw `configuration must be an object, not ${kind(config)}`;
  }
  for (const key of Object.keys(config)) {
    if (!KNOWN_KEYS.includes(key)) {
      throw `unknown configuration key \`${key}\` (expected one of: ${KNOWN_KEYS.join(", ")})`;
    }
  }
  const getStr = (key) => {
    const v = config[key];
    if (v !== null && v !== undefined && typeof v !== "string") {
      throw `configuration key \`${key}\` must be a string, not ${kind(v)}`;
    }
    return v ?? null;
  };
  const columns = config.columns;
  if (columns === null || columns === undefined) {
    throw "configuration key `columns` is required";
  }
  if (!Array.isArray(columns) || !columns.every((c) => typeof c === "string")) {
    throw `configuration key \`columns\` must be a list of strings, not ${kind(columns)}`;
  }
  const patterns = columns.map((pattern) => {
    const parts = pattern.split(".");
    if (parts.length > 3 || parts.some((p) => p === "")) {
      throw `\`${pattern}\` is not a column pattern ([schema.][table.]column)`;
    }
    return parts;
  });
  const redaction = getStr("text");
  const mode = getStr("mode") ?? "redact";
  if (mode !== "redact") {
    throw `mode must be \`redact\` (the only mode of this plugin), not \`${mode}\``;
  }
  return { patterns, redaction: redaction ?? "****" };
}

// Whether `name` matches `pattern`, where `*` matches any run of characters.
function glob(pattern, name) {
  const pieces = pattern.split("*");
  const first = pieces[0];
  if (!name.startsWith(first)) return false;
  let rest = name.slice(first.length);
  if (pieces.length === 1) return rest === ""; // no `*`: an exact match
  const last = pieces[pieces.length - 1];
  for (const piece of pieces.slice(1, -1)) {
    const i = rest.indexOf(piece);
    if (i < 0) return false;
    rest = rest.slice(i + piece.length);
  }
  return rest.length >= last.length && rest.endsWith(last);
}

function textColumn(c) {
  return {
    name: c.name,
    typeOid: 25,
    typeModifier: -1,
    typeName: "text",
    baseTypeOid: 25,
    nullable: c.nullable,
    isKey: c.isKey,
    defaultExpr: null,
    enumLabels: [],
  };
}

let state = null;

function freshState(config) {
  return {
    ...config,
    tables: new Map(), // input id -> table
    plans: new Map(), // input id -> { mask: column indexes, shape: derived table or null }
    derived: new Map(), // input id -> derived id, once sent
    derivedIds: new Set(),
    nextId: MAX_ID, // derived ids count down from here
  };
}

function matches(table, column) {
  const name = [table.schema, table.name, column.name];
  return state.patterns.some((parts) =>
    parts.every((p, i) => glob(p, name[3 - parts.length + i])),
  );
}

function addTable(table) {
  // A relay id equal to a derived one retires the derived one; a descriptor re-sent under a
  // known id drops what was derived from the old one.
  if (state.derivedIds.has(table.id)) {
    state.derivedIds.delete(table.id);
    for (const [input, id] of state.derived) {
      if (id === table.id) state.derived.delete(input);
    }
  }
  if (state.derived.has(table.id)) {
    state.derivedIds.delete(state.derived.get(table.id));
    state.derived.delete(table.id);
  }
  state.tables.set(table.id, table);
  const mask = [];
  table.columns.forEach((c, i) => {
    if (matches(table, c)) mask.push(i);
  });
  const retype = mask.filter(
    (i) =>
      !TEXT_OIDS.includes(table.columns[i].typeOid) &&
      !TEXT_OIDS.includes(table.columns[i].baseTypeOid),
  );
  let shape = null;
  if (retype.length > 0) {
    shape = {
      ...table,
      columns: table.columns.map((c, i) => (retype.includes(i) ? textColumn(c) : c)),
    };
  }
  state.plans.set(table.id, { mask, shape });
}

function derivedId(inputId, shape, newTables) {
  if (state.derived.has(inputId)) return state.derived.get(inputId);
  let id;
  do {
    id = state.nextId;
    state.nextId = state.nextId === 0 ? MAX_ID : state.nextId - 1;
  } while (state.tables.has(id) || state.derivedIds.has(id));
  state.derived.set(inputId, id);
  state.derivedIds.add(id);
  newTables.push({ ...shape, id });
  return id;
}

export const transform = {
  init(config) {
    state = null; // a refused configuration leaves no usable instance behind
    state = freshState(parseConfig(config));
    return { name: NAME, version: VERSION, interest: { tables: null, ops: null, columns: null } };
  },

  transform(tables, events) {
    if (state === null) throw "transform called before init";
    for (const table of tables) addTable(table);
    const newTables = [];
    const out = [];
    for (const event of events) {
      const plan = state.plans.get(event.table);
      if (plan === undefined) {
        throw `event refers to table descriptor ${event.table} which was never sent`;
      }
      for (const row of [event.before, event.after]) {
        if (row === null || row === undefined) continue;
        for (const i of plan.mask) {
          if (i < row.length && row[i].tag !== "null" && row[i].tag !== "unchanged-toast") {
            row[i] = { tag: "text", val: state.redaction };
          }
        }
      }
      if (plan.shape !== null) {
        event.table = derivedId(event.table, plan.shape, newTables);
      }
      out.push({ tag: "change", val: event });
    }
    return { tables: newTables, events: out };
  },
};
