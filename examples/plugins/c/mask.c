// walrelay plugin `mask-c`: redacts the values of chosen columns.
//
// The C twin of plugins/mask in its `redact` mode, with the same configuration:
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
//
// Bindings: `wit-bindgen c` makes plugin.h/plugin.c. Ownership follows the canonical ABI: an
// export owns its arguments, and what it returns is freed by the generated post-return code, so
// events move from the input list to the output and every string put in the output is malloc'd.

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

#define NAME "mask-c"
#define VERSION "0.1.0"

typedef walrelay_plugin_types_table_t table_t;
typedef walrelay_plugin_types_column_t column_t;
typedef walrelay_plugin_types_value_t value_t;
typedef walrelay_plugin_types_change_event_t event_t;

// ---- small helpers ----------------------------------------------------------------------------

// malloc that traps when out of memory, and gives NULL for nothing: the generated code frees a
// string's or list's buffer only when it is not empty.
static void *xmalloc(size_t n) {
    if (n == 0) return NULL;
    void *p = malloc(n);
    if (!p) __builtin_trap();
    return p;
}

// Sets `err` to the concatenation of the strings given, up to a NULL. (No printf: wasi-libc's
// stdio would make the module import WASI's file functions.)
static void set_error(plugin_string_t *err, ...) {
    va_list ap;
    size_t len = 0;
    va_start(ap, err);
    for (const char *s; (s = va_arg(ap, const char *));) len += strlen(s);
    va_end(ap);
    err->len = len;
    err->ptr = xmalloc(len);
    size_t at = 0;
    va_start(ap, err);
    for (const char *s; (s = va_arg(ap, const char *));) {
        memcpy(err->ptr + at, s, strlen(s));
        at += strlen(s);
    }
    va_end(ap);
}

// `v` in decimal, in `buf` (at least 11 bytes).
static const char *u32_text(uint32_t v, char *buf) {
    char *p = buf + 10;
    *p = 0;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}

static void string_copy(plugin_string_t *dst, const plugin_string_t *src) {
    dst->len = src->len;
    dst->ptr = xmalloc(src->len);
    if (src->len) memcpy(dst->ptr, src->ptr, src->len);
}

// ---- JSON (just enough for the configuration) -------------------------------------------------

typedef enum { J_NULL, J_BOOL, J_NUMBER, J_STRING, J_LIST, J_OBJECT } jkind_t;

typedef struct json {
    jkind_t kind;
    char *str; // J_STRING: the decoded text (UTF-8), NUL-terminated
    size_t len;
    size_t n;          // J_LIST, J_OBJECT: item count
    struct json *items; // J_LIST, J_OBJECT: items
    char **keys;       // J_OBJECT: keys, NUL-terminated
} json_t;

typedef struct {
    const char *p, *end;
    const char *error;
} parser_t;

static void json_free(json_t *v) {
    free(v->str);
    for (size_t i = 0; i < v->n; i++) {
        json_free(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
}

static void skip_ws(parser_t *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static bool literal(parser_t *ps, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, word, n) == 0) {
        ps->p += n;
        return true;
    }
    return false;
}

static int hex4(parser_t *ps) {
    if (ps->end - ps->p < 4) return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = *ps->p++;
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return -1;
    }
    return v;
}

static size_t put_utf8(char *out, uint32_t cp) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xc0 | cp >> 6); out[1] = (char)(0x80 | (cp & 0x3f)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12); out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f)); return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18); out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); out[3] = (char)(0x80 | (cp & 0x3f)); return 4;
}

static bool parse_string(parser_t *ps, char **out, size_t *out_len) {
    ps->p++; // the opening quote
    char *buf = xmalloc((size_t)(ps->end - ps->p) + 1); // decoding never grows the text
    size_t n = 0;
    while (ps->p < ps->end && *ps->p != '"') {
        unsigned char c = (unsigned char)*ps->p++;
        if (c < 0x20) { ps->error = "control character in a string"; free(buf); return false; }
        if (c != '\\') { buf[n++] = (char)c; continue; }
        if (ps->p >= ps->end) break;
        char e = *ps->p++;
        switch (e) {
        case '"': buf[n++] = '"'; break;
        case '\\': buf[n++] = '\\'; break;
        case '/': buf[n++] = '/'; break;
        case 'b': buf[n++] = '\b'; break;
        case 'f': buf[n++] = '\f'; break;
        case 'n': buf[n++] = '\n'; break;
        case 'r': buf[n++] = '\r'; break;
        case 't': buf[n++] = '\t'; break;
        case 'u': {
            int cp = hex4(ps);
            if (cp < 0) { ps->error = "bad \\u escape"; free(buf); return false; }
            if (cp >= 0xd800 && cp < 0xdc00) {
                int lo = -1;
                if (literal(ps, "\\u")) lo = hex4(ps);
                if (lo < 0xdc00 || lo >= 0xe000) { ps->error = "lone surrogate"; free(buf); return false; }
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp < 0xe000) {
                ps->error = "lone surrogate"; free(buf); return false;
            }
            n += put_utf8(buf + n, (uint32_t)cp);
            break;
        }
        default: ps->error = "bad escape"; free(buf); return false;
        }
    }
    if (ps->p >= ps->end) { ps->error = "unterminated string"; free(buf); return false; }
    ps->p++; // the closing quote
    buf[n] = 0;
    *out = buf;
    *out_len = n;
    return true;
}

static bool parse_value(parser_t *ps, json_t *v, int depth);

static bool push_item(json_t *v, size_t *cap, json_t item, char *key) {
    if (v->n == *cap) {
        *cap = *cap ? *cap * 2 : 4;
        v->items = realloc(v->items, *cap * sizeof *v->items);
        if (v->kind == J_OBJECT) v->keys = realloc(v->keys, *cap * sizeof *v->keys);
        if (!v->items || (v->kind == J_OBJECT && !v->keys)) __builtin_trap();
    }
    v->items[v->n] = item;
    if (v->kind == J_OBJECT) v->keys[v->n] = key;
    v->n++;
    return true;
}

static bool parse_value(parser_t *ps, json_t *v, int depth) {
    memset(v, 0, sizeof *v);
    if (depth > 128) { ps->error = "nested too deeply"; return false; }
    skip_ws(ps);
    if (ps->p >= ps->end) { ps->error = "unexpected end"; return false; }
    char c = *ps->p;
    if (literal(ps, "null")) { v->kind = J_NULL; return true; }
    if (literal(ps, "true") || literal(ps, "false")) { v->kind = J_BOOL; return true; }
    if (c == '"') { v->kind = J_STRING; return parse_string(ps, &v->str, &v->len); }
    if (c == '-' || (c >= '0' && c <= '9')) {
        const char *start = ps->p;
        if (*ps->p == '-') ps->p++;
        const char *digits = ps->p;
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
        if (ps->p == digits || (*digits == '0' && ps->p - digits > 1)) { ps->error = "bad number"; return false; }
        if (ps->p < ps->end && *ps->p == '.') {
            ps->p++;
            const char *frac = ps->p;
            while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
            if (ps->p == frac) { ps->error = "bad number"; return false; }
        }
        if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
            ps->p++;
            if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
            const char *exp = ps->p;
            while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
            if (ps->p == exp) { ps->error = "bad number"; return false; }
        }
        (void)start;
        v->kind = J_NUMBER;
        return true;
    }
    if (c == '[' || c == '{') {
        bool object = c == '{';
        v->kind = object ? J_OBJECT : J_LIST;
        size_t cap = 0;
        ps->p++;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == (object ? '}' : ']')) { ps->p++; return true; }
        for (;;) {
            char *key = NULL;
            if (object) {
                skip_ws(ps);
                size_t klen;
                if (ps->p >= ps->end || *ps->p != '"') { ps->error = "expected a key"; return false; }
                if (!parse_string(ps, &key, &klen)) return false;
                skip_ws(ps);
                if (ps->p >= ps->end || *ps->p != ':') { free(key); ps->error = "expected `:`"; return false; }
                ps->p++;
            }
            json_t item;
            if (!parse_value(ps, &item, depth + 1)) { free(key); json_free(&item); return false; }
            push_item(v, &cap, item, key);
            skip_ws(ps);
            if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
            if (ps->p < ps->end && *ps->p == (object ? '}' : ']')) { ps->p++; return true; }
            ps->error = object ? "expected `,` or `}`" : "expected `,` or `]`";
            return false;
        }
    }
    ps->error = "expected a value";
    return false;
}

static const char *kind_name(const json_t *v) {
    switch (v->kind) {
    case J_NULL: return "null";
    case J_BOOL: return "a boolean";
    case J_NUMBER: return "a number";
    case J_STRING: return "a string";
    case J_LIST: return "a list";
    default: return "an object";
    }
}

// The value of `key`, NULL when absent or null (the last one wins, as in serde_json).
static const json_t *json_get(const json_t *object, const char *key) {
    const json_t *found = NULL;
    for (size_t i = 0; i < object->n; i++)
        if (strcmp(object->keys[i], key) == 0) found = &object->items[i];
    return found && found->kind != J_NULL ? found : NULL;
}

// ---- state ------------------------------------------------------------------------------------

typedef struct {
    char **parts; // 1 to 3 parts, NUL-terminated
    size_t n;
} pattern_t;

typedef struct {
    table_t table;   // the descriptor as the relay sent it (owned)
    size_t *mask;    // indexes of the columns to mask
    size_t n_mask;
    bool *retype;    // per column: masked and not text, so described as text in the output
    bool has_shape;  // some column is retyped: events go out under a derived descriptor
    bool derived;    // that descriptor was sent, under derived_id
    uint32_t derived_id;
} entry_t;

static struct {
    bool ready;
    pattern_t *patterns;
    size_t n_patterns;
    char *redaction;
    size_t redaction_len;
    entry_t *entries;
    size_t n_entries, cap_entries;
    uint32_t next_id; // derived ids count down from u32::MAX
} S;

static void entry_release(entry_t *e) {
    walrelay_plugin_types_table_free(&e->table);
    free(e->mask);
    free(e->retype);
}

static void reset_state(void) {
    for (size_t i = 0; i < S.n_patterns; i++) {
        for (size_t j = 0; j < S.patterns[i].n; j++) free(S.patterns[i].parts[j]);
        free(S.patterns[i].parts);
    }
    free(S.patterns);
    free(S.redaction);
    for (size_t i = 0; i < S.n_entries; i++) entry_release(&S.entries[i]);
    free(S.entries);
    memset(&S, 0, sizeof S);
    S.next_id = UINT32_MAX;
}

static entry_t *find_entry(uint32_t id) {
    for (size_t i = 0; i < S.n_entries; i++)
        if (S.entries[i].table.id == id) return &S.entries[i];
    return NULL;
}

static bool derived_id_taken(uint32_t id) {
    for (size_t i = 0; i < S.n_entries; i++)
        if (S.entries[i].derived && S.entries[i].derived_id == id) return true;
    return false;
}

// ---- configuration ----------------------------------------------------------------------------

static bool configure(const plugin_string_t *config, plugin_string_t *err) {
    static const char *known[] = {"columns", "mode", "text"};
    json_t root;
    memset(&root, 0, sizeof root);
    parser_t ps = {(const char *)config->ptr, (const char *)config->ptr + config->len, NULL};
    skip_ws(&ps);
    if (ps.p == ps.end) {
        root.kind = J_NULL; // empty text counts as null
    } else {
        if (!parse_value(&ps, &root, 0)) {
            set_error(err, "configuration is not valid JSON: ", ps.error, NULL);
            json_free(&root);
            return false;
        }
        skip_ws(&ps);
        if (ps.p != ps.end) {
            set_error(err, "configuration is not valid JSON: trailing characters", NULL);
            json_free(&root);
            return false;
        }
    }
    bool ok = false;
    if (root.kind != J_OBJECT) {
        set_error(err, "configuration must be an object, not ", kind_name(&root), NULL);
        goto out;
    }
    for (size_t i = 0; i < root.n; i++) {
        bool is_known = false;
        for (size_t k = 0; k < 3; k++) is_known |= strcmp(root.keys[i], known[k]) == 0;
        if (!is_known) {
            set_error(err, "unknown configuration key `", root.keys[i],
                      "` (expected one of: columns, mode, text)", NULL);
            goto out;
        }
    }
    const json_t *columns = json_get(&root, "columns");
    if (!columns) {
        set_error(err, "configuration key `columns` is required", NULL);
        goto out;
    }
    bool strings = columns->kind == J_LIST;
    for (size_t i = 0; strings && i < columns->n; i++) strings = columns->items[i].kind == J_STRING;
    if (!strings) {
        set_error(err, "configuration key `columns` must be a list of strings, not ",
                  kind_name(columns), NULL);
        goto out;
    }
    const json_t *text = json_get(&root, "text");
    const json_t *mode = json_get(&root, "mode");
    for (int k = 0; k < 2; k++) {
        const json_t *v = k == 0 ? text : mode;
        if (v && v->kind != J_STRING) {
            set_error(err, "configuration key `", k == 0 ? "text" : "mode", "` must be a string, not ",
                      kind_name(v), NULL);
            goto out;
        }
    }
    // Patterns: split on '.', 1 to 3 non-empty parts.
    pattern_t *patterns = calloc(columns->n ? columns->n : 1, sizeof *patterns);
    for (size_t i = 0; i < columns->n; i++) {
        const json_t *c = &columns->items[i];
        size_t n = 1;
        for (size_t j = 0; j < c->len; j++) n += c->str[j] == '.';
        bool bad = n > 3;
        pattern_t *p = &patterns[i];
        p->parts = calloc(n, sizeof *p->parts);
        p->n = n;
        size_t start = 0, part = 0;
        for (size_t j = 0; j <= c->len; j++) {
            if (j == c->len || c->str[j] == '.') {
                if (j == start) bad = true;
                p->parts[part] = xmalloc(j - start + 1);
                memcpy(p->parts[part], c->str + start, j - start);
                p->parts[part][j - start] = 0;
                part++;
                start = j + 1;
            }
        }
        if (bad) {
            set_error(err, "`", c->str, "` is not a column pattern ([schema.][table.]column)", NULL);
            for (size_t q = 0; q <= i; q++) {
                for (size_t j = 0; j < patterns[q].n; j++) free(patterns[q].parts[j]);
                free(patterns[q].parts);
            }
            free(patterns);
            goto out;
        }
    }
    if (mode && strcmp(mode->str, "redact") != 0) {
        set_error(err, "mode must be `redact` (the only mode of this plugin), not `", mode->str, "`",
                  NULL);
        for (size_t q = 0; q < columns->n; q++) {
            for (size_t j = 0; j < patterns[q].n; j++) free(patterns[q].parts[j]);
            free(patterns[q].parts);
        }
        free(patterns);
        goto out;
    }
    S.patterns = patterns;
    S.n_patterns = columns->n;
    const char *redaction = text ? text->str : "****";
    S.redaction_len = text ? text->len : 4;
    S.redaction = xmalloc(S.redaction_len + 1);
    memcpy(S.redaction, redaction, S.redaction_len + 1);
    S.ready = true;
    ok = true;
out:
    json_free(&root);
    return ok;
}

// ---- matching ---------------------------------------------------------------------------------

static bool starts_with(const char *s, size_t n, const char *prefix, size_t pn) {
    return n >= pn && memcmp(s, prefix, pn) == 0;
}

// Whether `name` (n bytes) matches `pattern`, where `*` matches any run of characters.
static bool glob(const char *pattern, const char *name, size_t n) {
    const char *star = strchr(pattern, '*');
    size_t first = star ? (size_t)(star - pattern) : strlen(pattern);
    if (!starts_with(name, n, pattern, first)) return false;
    const char *rest = name + first;
    size_t rest_n = n - first;
    if (!star) return rest_n == 0; // no `*`: an exact match
    const char *piece = star + 1;
    for (;;) {
        const char *next = strchr(piece, '*');
        if (!next) break; // `piece` is the last one
        size_t len = (size_t)(next - piece);
        // Find the first occurrence of piece[0..len) in rest.
        size_t i = 0;
        bool found = false;
        for (; len <= rest_n && i <= rest_n - len; i++)
            if (memcmp(rest + i, piece, len) == 0) { found = true; break; }
        if (!found) return false;
        rest += i + len;
        rest_n -= i + len;
        piece = next + 1;
    }
    size_t last = strlen(piece);
    return rest_n >= last && memcmp(rest + rest_n - last, piece, last) == 0;
}

static bool matches(const table_t *t, const column_t *c) {
    const plugin_string_t *name[3] = {&t->schema, &t->name, &c->name};
    for (size_t i = 0; i < S.n_patterns; i++) {
        const pattern_t *p = &S.patterns[i];
        bool all = true;
        for (size_t j = 0; all && j < p->n; j++) {
            const plugin_string_t *part = name[3 - p->n + j];
            all = glob(p->parts[j], (const char *)part->ptr, part->len);
        }
        if (all) return true;
    }
    return false;
}

static bool is_text_oid(uint32_t oid) {
    return oid == 25 || oid == 1043 || oid == 1042; // text, varchar, bpchar
}

// ---- descriptors ------------------------------------------------------------------------------

static void add_table(table_t *table) {
    uint32_t id = table->id;
    // A relay id equal to a derived one retires the derived one.
    for (size_t i = 0; i < S.n_entries; i++)
        if (S.entries[i].derived && S.entries[i].derived_id == id) S.entries[i].derived = false;
    entry_t *e = find_entry(id);
    if (e) {
        entry_release(e); // re-sent under a known id: what was derived from it goes too
    } else {
        if (S.n_entries == S.cap_entries) {
            S.cap_entries = S.cap_entries ? 2 * S.cap_entries : 8;
            S.entries = realloc(S.entries, S.cap_entries * sizeof *S.entries);
            if (!S.entries) __builtin_trap();
        }
        e = &S.entries[S.n_entries++];
    }
    memset(e, 0, sizeof *e);
    e->table = *table; // moved in
    size_t n = table->columns.len;
    e->mask = xmalloc(n * sizeof *e->mask);
    e->retype = calloc(n ? n : 1, sizeof *e->retype);
    for (size_t i = 0; i < n; i++) {
        const column_t *c = &table->columns.ptr[i];
        if (!matches(table, c)) continue;
        e->mask[e->n_mask++] = i;
        if (!is_text_oid(c->type_oid) && !is_text_oid(c->base_type_oid)) {
            e->retype[i] = true;
            e->has_shape = true;
        }
    }
}

// A deep copy of the entry's table, masked columns retyped to text, under `id`.
static void derived_table(const entry_t *e, uint32_t id, table_t *out) {
    const table_t *t = &e->table;
    out->id = id;
    string_copy(&out->schema, &t->schema);
    string_copy(&out->name, &t->name);
    string_copy(&out->topic, &t->topic);
    out->replica_identity = t->replica_identity;
    size_t n = t->columns.len;
    out->columns.len = n;
    out->columns.ptr = xmalloc(n * sizeof(column_t));
    for (size_t i = 0; i < n; i++) {
        const column_t *c = &t->columns.ptr[i];
        column_t *d = &out->columns.ptr[i];
        string_copy(&d->name, &c->name);
        d->nullable = c->nullable;
        d->is_key = c->is_key;
        if (e->retype[i]) {
            d->type_oid = 25;
            d->base_type_oid = 25;
            d->type_modifier = -1;
            plugin_string_dup(&d->type_name, "text");
            d->default_expr.is_some = false;
            d->enum_labels.ptr = NULL;
            d->enum_labels.len = 0;
        } else {
            d->type_oid = c->type_oid;
            d->base_type_oid = c->base_type_oid;
            d->type_modifier = c->type_modifier;
            string_copy(&d->type_name, &c->type_name);
            d->default_expr.is_some = c->default_expr.is_some;
            if (c->default_expr.is_some) string_copy(&d->default_expr.val, &c->default_expr.val);
            d->enum_labels.len = c->enum_labels.len;
            d->enum_labels.ptr = xmalloc(c->enum_labels.len * sizeof(plugin_string_t));
            for (size_t j = 0; j < c->enum_labels.len; j++)
                string_copy(&d->enum_labels.ptr[j], &c->enum_labels.ptr[j]);
        }
    }
}

// ---- exports ----------------------------------------------------------------------------------

bool exports_walrelay_plugin_transform_init(plugin_string_t *config,
                                            exports_walrelay_plugin_transform_plugin_info_t *ret,
                                            plugin_string_t *err) {
    reset_state(); // as the Rust SDK: a refused configuration leaves no instance behind
    bool ok = configure(config, err);
    plugin_string_free(config);
    if (!ok) return false;
    plugin_string_dup(&ret->name, NAME);
    plugin_string_dup(&ret->version, VERSION);
    ret->interest.tables.is_some = false;
    ret->interest.ops.is_some = false;
    ret->interest.columns.is_some = false;
    return true;
}

static void redact_row(walrelay_plugin_types_option_list_value_t *row, const entry_t *e) {
    if (!row->is_some) return;
    for (size_t k = 0; k < e->n_mask; k++) {
        size_t i = e->mask[k];
        if (i >= row->val.len) continue;
        value_t *v = &row->val.ptr[i];
        if (v->tag == WALRELAY_PLUGIN_TYPES_VALUE_NULL ||
            v->tag == WALRELAY_PLUGIN_TYPES_VALUE_UNCHANGED_TOAST)
            continue;
        walrelay_plugin_types_value_free(v);
        v->tag = WALRELAY_PLUGIN_TYPES_VALUE_TEXT;
        v->val.text.len = S.redaction_len;
        v->val.text.ptr = xmalloc(S.redaction_len);
        if (S.redaction_len) memcpy(v->val.text.ptr, S.redaction, S.redaction_len);
    }
}

bool exports_walrelay_plugin_transform_transform(
    exports_walrelay_plugin_transform_list_table_t *tables,
    exports_walrelay_plugin_transform_list_change_event_t *events,
    exports_walrelay_plugin_transform_batch_output_t *ret, plugin_string_t *err) {
    if (!S.ready) {
        plugin_string_dup(err, "transform called before init");
        exports_walrelay_plugin_transform_list_table_free(tables);
        exports_walrelay_plugin_transform_list_change_event_free(events);
        return false;
    }
    for (size_t i = 0; i < tables->len; i++) add_table(&tables->ptr[i]);
    free(tables->ptr); // the tables themselves now belong to the entries
    for (size_t i = 0; i < events->len; i++) {
        if (!find_entry(events->ptr[i].table)) {
            char id[11];
            set_error(err, "event refers to table descriptor ", u32_text(events->ptr[i].table, id),
                      " which was never sent", NULL);
            exports_walrelay_plugin_transform_list_change_event_free(events);
            return false;
        }
    }
    // The post-return code frees a list's buffer only when the list is not empty.
    size_t n = events->len;
    ret->events.len = n;
    ret->events.ptr = xmalloc(n * sizeof *ret->events.ptr);
    ret->tables.len = 0;
    ret->tables.ptr = n ? xmalloc(S.n_entries * sizeof *ret->tables.ptr) : NULL;
    for (size_t i = 0; i < n; i++) {
        event_t *ev = &events->ptr[i];
        entry_t *e = find_entry(ev->table);
        redact_row(&ev->before, e);
        redact_row(&ev->after, e);
        if (e->has_shape) {
            if (!e->derived) {
                uint32_t id;
                do {
                    id = S.next_id--;
                } while (find_entry(id) || derived_id_taken(id));
                e->derived = true;
                e->derived_id = id;
                derived_table(e, id, &ret->tables.ptr[ret->tables.len++]);
            }
            ev->table = e->derived_id;
        }
        ret->events.ptr[i].tag = WALRELAY_PLUGIN_TYPES_OUTPUT_CHANGE;
        ret->events.ptr[i].val.change = *ev; // moved out
    }
    free(events->ptr);
    if (ret->tables.len == 0) {
        free(ret->tables.ptr);
        ret->tables.ptr = NULL;
    }
    return true;
}
