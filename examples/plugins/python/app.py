"""walrelay plugin `mask-python`: redacts the values of chosen columns.

The Python twin of plugins/mask in its `redact` mode, with the same configuration:

    {"columns": ["public.customers.email", "*.phone"], "text": "****"}

- `columns` (required): patterns of `column`, `table.column` or `schema.table.column`, matched
  against the end of a column's full name; `*` matches any run of characters within one part.
- `text` (default `****`) replaces every non-null value of a matching column, in `before` and
  `after`. `null` stays `null`; an unchanged TOASTed value stays unchanged.
- A masked column whose type is not text, varchar or bpchar is described as `text` from then on:
  the events of its table refer to a derived descriptor, sent once, whose id counts down from
  2^32 - 1 (skipping ids the relay sent).
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types as t

NAME = "mask-python"
VERSION = "0.1.0"
KNOWN_KEYS = ("columns", "mode", "text")
TEXT_OIDS = (25, 1043, 1042)  # text, varchar, bpchar
MAX_ID = 0xFFFFFFFF


def kind(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def parse_config(text):
    """The patterns (lists of parts) and the redaction text; raises ValueError."""
    try:
        config = json.loads(text) if text.strip() else None
    except ValueError as e:
        raise ValueError(f"configuration is not valid JSON: {e}")
    if not isinstance(config, dict):
        raise ValueError(f"configuration must be an object, not {kind(config)}")
    for key in config:
        if key not in KNOWN_KEYS:
            raise ValueError(
                f"unknown configuration key `{key}` (expected one of: {', '.join(KNOWN_KEYS)})"
            )

    def get_str(key):
        value = config.get(key)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"configuration key `{key}` must be a string, not {kind(value)}")
        return value

    columns = config.get("columns")
    if columns is None:
        raise ValueError("configuration key `columns` is required")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise ValueError(
            f"configuration key `columns` must be a list of strings, not {kind(columns)}"
        )
    patterns = []
    for pattern in columns:
        parts = pattern.split(".")
        if len(parts) > 3 or any(p == "" for p in parts):
            raise ValueError(f"`{pattern}` is not a column pattern ([schema.][table.]column)")
        patterns.append(parts)
    redaction = get_str("text")
    mode = get_str("mode") or "redact"
    if mode != "redact":
        raise ValueError(f"mode must be `redact` (the only mode of this plugin), not `{mode}`")
    return patterns, "****" if redaction is None else redaction


def glob(pattern, name):
    """Whether `name` matches `pattern`, where `*` matches any run of characters."""
    pieces = pattern.split("*")
    first = pieces[0]
    if not name.startswith(first):
        return False
    rest = name[len(first):]
    if len(pieces) == 1:
        return rest == ""  # no `*`: an exact match
    last = pieces[-1]
    for piece in pieces[1:-1]:
        i = rest.find(piece)
        if i < 0:
            return False
        rest = rest[i + len(piece):]
    return len(rest) >= len(last) and rest.endswith(last)


def text_column(c):
    return t.Column(
        name=c.name,
        type_oid=25,
        type_modifier=-1,
        type_name="text",
        base_type_oid=25,
        nullable=c.nullable,
        is_key=c.is_key,
        default_expr=None,
        enum_labels=[],
    )


class Mask:
    """The plugin instance's state: configuration and descriptors."""

    def __init__(self):
        self.patterns = None
        self.redaction = "****"
        self.reset()

    def reset(self):
        self.tables = {}  # input id -> Table
        self.plans = {}  # input id -> (column indexes to mask, derived shape or None)
        self.derived = {}  # input id -> derived id, once sent
        self.derived_ids = set()
        self.next_id = MAX_ID  # derived ids count down from here

    def configure(self, config):
        self.patterns = None  # a refused configuration leaves no usable instance behind
        try:
            self.patterns, self.redaction = parse_config(config)
        except ValueError as e:
            raise Err(str(e))
        self.reset()

    def matches(self, table, column):
        name = (table.schema, table.name, column.name)
        return any(
            all(glob(p, n) for p, n in zip(parts, name[3 - len(parts):]))
            for parts in self.patterns
        )

    def add_table(self, table):
        # A relay id equal to a derived one retires the derived one; a descriptor re-sent under
        # a known id drops what was derived from the old one.
        if table.id in self.derived_ids:
            self.derived_ids.discard(table.id)
            self.derived = {k: v for k, v in self.derived.items() if v != table.id}
        old = self.derived.pop(table.id, None)
        if old is not None:
            self.derived_ids.discard(old)
        self.tables[table.id] = table
        mask = [i for i, c in enumerate(table.columns) if self.matches(table, c)]
        retype = [
            i for i in mask
            if table.columns[i].type_oid not in TEXT_OIDS
            and table.columns[i].base_type_oid not in TEXT_OIDS
        ]
        shape = None
        if retype:
            columns = [text_column(c) if i in retype else c for i, c in enumerate(table.columns)]
            shape = t.Table(0, table.schema, table.name, columns, table.replica_identity, table.topic)
        self.plans[table.id] = (mask, shape)

    def derived_id(self, input_id, shape, new_tables):
        if input_id in self.derived:
            return self.derived[input_id]
        while True:
            candidate = self.next_id
            self.next_id = (self.next_id - 1) & MAX_ID
            if candidate not in self.tables and candidate not in self.derived_ids:
                break
        self.derived[input_id] = candidate
        self.derived_ids.add(candidate)
        new_tables.append(
            t.Table(
                candidate, shape.schema, shape.name, shape.columns, shape.replica_identity, shape.topic
            )
        )
        return candidate

    def run(self, tables, events):
        if self.patterns is None:
            raise Err("transform called before init")
        for table in tables:
            self.add_table(table)
        new_tables, out = [], []
        for event in events:
            if event.table not in self.plans:
                raise Err(
                    f"event refers to table descriptor {event.table} which was never sent"
                )
            mask, shape = self.plans[event.table]
            for row in (event.before, event.after):
                if row is None:
                    continue
                for i in mask:
                    if i < len(row) and not isinstance(
                        row[i], (t.Value_Null, t.Value_UnchangedToast)
                    ):
                        row[i] = t.Value_Text(self.redaction)
            if shape is not None:
                event.table = self.derived_id(event.table, shape, new_tables)
            out.append(t.Output_Change(event))
        return t.BatchOutput(tables=new_tables, events=out)


# componentize-py makes a new Transform for every call, so the state lives in the module.
MASK = Mask()


class Transform(exports.Transform):
    def init(self, config):
        MASK.configure(config)
        return t.PluginInfo(NAME, VERSION, t.Interest(tables=None, ops=None, columns=None))

    def transform(self, tables, events):
        return MASK.run(tables, events)
