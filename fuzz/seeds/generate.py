#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora into this directory (one folder per target).

The pgoutput messages use the byte layouts of PostgreSQL's proto.c, as the unit tests in
pgwire/src/pgoutput.rs build them. Rerun after changing this file; the output is committed.
"""
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
TS_PG = 531_582_690_123_456  # 2016-11-04 13:51:30.123456 UTC, in µs since 2000-01-01


def u8(v): return struct.pack(">B", v)
def u16(v): return struct.pack(">H", v)
def u32(v): return struct.pack(">I", v)
def i32(v): return struct.pack(">i", v)
def u64(v): return struct.pack(">Q", v)
def i64(v): return struct.pack(">q", v)
def cstr(s): return s.encode() + b"\0"
def text(v): return b"t" + i32(len(v.encode())) + v.encode()
def tuple_(*fields): return u16(len(fields)) + b"".join(fields)


def relation(xid=None):
    return (b"R" + (u32(xid) if xid is not None else b"") + u32(16_384) + cstr("public")
            + cstr("orders") + b"d" + u16(3)
            + u8(1) + cstr("id") + u32(23) + i32(-1)
            + u8(0) + cstr("note") + u32(1043) + i32(68)
            + u8(0) + cstr("blob") + u32(17) + i32(-1))


def stream(xid):
    return u32(xid)


PGOUTPUT = {
    "begin": b"B" + u64(0x0000_0001_0000_0A28) + i64(TS_PG) + u32(7777),
    "commit": b"C" + u8(0) + u64(10) + u64(20) + i64(TS_PG),
    "origin": b"O" + u64(0xAB) + cstr("node_a"),
    "relation": relation(),
    "relation_empty_namespace": b"R" + u32(1) + cstr("") + cstr("t") + b"f" + u16(0),
    "type": b"Y" + u32(16_500) + cstr("public") + cstr("mood"),
    "insert": b"I" + u32(16_384) + b"N"
    + tuple_(text("42"), b"n", b"u", b"b" + i32(2) + b"\x00\xff"),
    "update_full": b"U" + u32(16_384) + b"O" + tuple_(text("1"), text("old"), b"n")
    + b"N" + tuple_(text("1"), text("new"), b"u"),
    "update_key": b"U" + u32(16_384) + b"K" + tuple_(text("1"), b"n")
    + b"N" + tuple_(text("2"), text("x")),
    "update_new_only": b"U" + u32(3) + b"N" + tuple_(text("v")),
    "delete_key": b"D" + u32(9) + b"K" + tuple_(text("7"), b"n"),
    "delete_full": b"D" + u32(9) + b"O" + tuple_(text("7"), text("x")),
    "truncate": b"T" + i32(2) + u8(3) + u32(100) + u32(200),
    "message": b"M" + u8(1) + u64(0x99) + cstr("wal2x") + i32(3) + b"a\0b",
    "message_nontx": b"M" + u8(0) + u64(1) + cstr("p") + i32(0),
    # Protocol v2 streaming: the block markers, then data messages with their leading xid.
    "stream_start_first": b"S" + u32(700) + u8(1),
    "stream_start": b"S" + u32(700) + u8(0),
    "stream_stop": b"E",
    "stream_commit": b"c" + u32(700) + u8(0) + u64(5) + u64(6) + i64(TS_PG),
    "stream_abort": b"A" + u32(700) + u32(701),
    "stream_relation": relation(901),
    "stream_type": b"Y" + stream(5) + u32(16_500) + cstr("") + cstr("mood"),
    "stream_insert": b"I" + stream(700) + u32(16_384) + b"N" + tuple_(text("1"), text("a"), b"n"),
    "stream_update": b"U" + stream(12) + u32(16_384) + b"K" + tuple_(text("1"), b"n")
    + b"N" + tuple_(text("2"), text("x")),
    "stream_delete": b"D" + stream(44) + u32(9) + b"O" + tuple_(text("7")),
    "stream_truncate": b"T" + stream(8) + i32(1) + u8(0) + u32(100),
    "stream_message": b"M" + stream(5) + u8(0) + u64(1) + cstr("p") + i32(0),
}

# One byte picking the type (an index into the target's OIDS table), then the text.
OID_INDEX = {"bool": 0, "bytea": 1, "char": 2, "name": 3, "int8": 4, "int2": 5, "int4": 6,
             "text": 7, "oid": 8, "json": 9, "float4": 10, "float8": 11, "bpchar": 12,
             "varchar": 13, "date": 14, "time": 15, "timestamp": 16, "timestamptz": 17,
             "numeric": 18, "uuid": 19, "jsonb": 20, "interval": 28, "unknown": 38}
VALUES = [
    ("bool", "t"), ("bool", "f"), ("int2", "-32768"), ("int4", "2147483647"),
    ("int8", "-9223372036854775808"), ("oid", "4294967295"), ("float4", "3.4028235e+38"),
    ("float8", "-Infinity"), ("float8", "NaN"), ("float8", "1e-320"),
    ("numeric", "-12.3400"), ("numeric", "NaN"), ("numeric", "1e10"),
    ("text", "héllo"), ("bpchar", "ab   "), ("name", "pg_class"),
    ("uuid", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"), ("uuid", "{a0eebc999c0b4ef8bb6d6bb9bd380a11}"),
    ("json", '{"a": [1, 2.5, null]}'), ("jsonb", "[]"),
    ("bytea", "\\xdeadBEEF"), ("bytea", "a\\\\b\\001\\377"),
    ("date", "2016-11-04"), ("date", "0001-12-31 BC"), ("date", "infinity"), ("date", "-infinity"),
    ("time", "13:51:30.123456"), ("time", "24:00:00"),
    ("timestamp", "2016-11-04 13:51:30.123456"), ("timestamp", "294247-01-10 04:00:54.775807"),
    ("timestamp", "4713-11-24 00:00:00 BC"), ("timestamptz", "2016-11-04 13:51:30.1+05:30"),
    ("timestamptz", "1900-01-01 00:00:00-00:17:32"), ("timestamptz", "infinity"),
    ("interval", "1 day 02:03:04"), ("unknown", "(1,2)"),
]

COPY_ROWS = [
    b"1\thello\t\xc3\xa9t\xc3\xa9\n",
    b"\\N\t\\N\n",
    b"a\\tb\\nc\\\\d\\x41\\101\\777\\q\r\n",
    b"\\N\\N\tx",
    b"",
    b"\t\t\n",
]


def write(target, items):
    d = os.path.join(HERE, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for name, data in items:
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


write("pgoutput_decode", PGOUTPUT.items())
write("text_value", [(f"{t}-{i}", bytes([OID_INDEX[t]]) + v.encode()) for i, (t, v) in enumerate(VALUES)])
write("copy_row", [(f"row-{i}", r) for i, r in enumerate(COPY_ROWS)])
