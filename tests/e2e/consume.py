#!/usr/bin/env python3
"""Reads Kafka topics with a client other than walrelay's (kafka-python, pure Python, instead of
librdkafka) and decodes every message on its own (json, or fastavro for Confluent-framed Avro).

Prints one JSON object per message, one per line:

    {"topic": ..., "partition": ..., "offset": ..., "key": ..., "value": ..., "headers": [[k, v], ...]}

* JSON (--format json): key and value are the parsed JSON documents.
* Avro (--format avro): each key and value must be Confluent-framed: magic byte 0, the writer
  schema's id as a 4-byte big-endian integer, then the Avro binary datum. The writer schema is
  fetched once per id from the registry (GET /schemas/ids/{id}) and the datum decoded with
  fastavro.schemaless_reader. Avro bytes and fixed become base64 strings; decimals become their
  decimal string; dates, times and timestamps their ISO 8601 form; UUIDs their string; NaN and
  the infinities the strings "NaN", "Infinity", "-Infinity" (as Jackson writes them).
* A Kafka null key or value (a tombstone) stays null. Header values are base64 strings (null for a
  null value).

Reads from the beginning of every partition of the given topics, without a consumer group, until
--expect messages were read, or (without --expect) until the end offsets seen at the start. Exits
with status 1 and a message on stderr after --timeout seconds, having printed what it read.

Dependencies are pinned in tests/e2e/requirements.txt (scripts/bootstrap installs them); lz4 is
there for kafka-python to read lz4-compressed batches, walrelay's default.
"""
import argparse
import base64
import math
import datetime
import decimal
import io
import json
import struct
import sys
import time
import urllib.request
import uuid

import fastavro
from kafka import KafkaConsumer, TopicPartition

REGISTRY_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


def fail(message):
    print(f"consume.py: {message}", file=sys.stderr)
    sys.exit(1)


def b64(data):
    return None if data is None else base64.b64encode(data).decode("ascii")


def jsonable(value):
    """Avro values as fastavro returns them, made JSON-serializable (see the module doc)."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return b64(bytes(value))
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        # As Jackson writes them (JSON has no NaN or infinities).
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


class Registry:
    """Writer schemas by id, fetched once each."""

    def __init__(self, url, basic_auth, bearer):
        self.url = url.rstrip("/")
        self.auth = None
        if basic_auth:
            self.auth = "Basic " + base64.b64encode(basic_auth.encode()).decode()
        elif bearer:
            self.auth = "Bearer " + bearer
        self.schemas = {}

    def schema(self, schema_id):
        if schema_id not in self.schemas:
            url = f"{self.url}/schemas/ids/{schema_id}"
            request = urllib.request.Request(url, headers={"Accept": REGISTRY_CONTENT_TYPE})
            if self.auth:
                request.add_header("Authorization", self.auth)
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    body = json.load(response)
            except urllib.error.HTTPError as e:
                fail(f"GET {url}: HTTP {e.code}: {e.read().decode(errors='replace')}")
            except OSError as e:
                fail(f"GET {url}: {e}")
            self.schemas[schema_id] = fastavro.parse_schema(json.loads(body["schema"]))
        return self.schemas[schema_id]


def decode(data, fmt, registry, where):
    if data is None:
        return None
    if fmt == "json":
        try:
            return json.loads(data)
        except ValueError as e:
            fail(f"{where}: not JSON ({e}): {data[:200]!r}")
    if len(data) < 5 or data[0] != 0:
        fail(f"{where}: not Confluent-framed Avro (magic byte 0 and a 4-byte schema id): {data[:16]!r}")
    (schema_id,) = struct.unpack(">I", data[1:5])
    body = io.BytesIO(data[5:])
    value = fastavro.schemaless_reader(body, registry.schema(schema_id))
    if body.tell() != len(data) - 5:
        fail(f"{where}: {len(data) - 5 - body.tell()} bytes left after the Avro datum (schema id {schema_id})")
    return jsonable(value)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True, help="host:port of the broker")
    parser.add_argument("--topic", action="append", required=True, help="a topic (repeatable)")
    parser.add_argument("--format", choices=["json", "avro"], default="json")
    parser.add_argument("--registry", help="Schema Registry base URL (needed for avro)")
    parser.add_argument("--basic-auth", help="registry credentials, user:password")
    parser.add_argument("--bearer", help="registry bearer token")
    parser.add_argument("--expect", type=int, help="stop after this many messages")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before giving up")
    args = parser.parse_args()
    if args.format == "avro" and not args.registry:
        fail("--format avro needs --registry")
    registry = Registry(args.registry, args.basic_auth, args.bearer) if args.registry else None
    deadline = time.monotonic() + args.timeout

    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="walrelay-e2e-consume.py",
    )
    partitions = []
    for topic in args.topic:
        while True:
            ids = consumer.partitions_for_topic(topic)
            if ids:
                partitions += [TopicPartition(topic, p) for p in sorted(ids)]
                break
            if time.monotonic() > deadline:
                fail(f"topic {topic} has no partitions after {args.timeout}s")
            time.sleep(0.2)
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    end = None if args.expect is not None else consumer.end_offsets(partitions)

    def done(count):
        if args.expect is not None:
            return count >= args.expect
        return all(consumer.position(tp) >= end[tp] for tp in partitions)

    count = 0
    while not done(count):
        if time.monotonic() > deadline:
            fail(f"timed out after {args.timeout}s with {count} messages read")
        for tp, records in consumer.poll(timeout_ms=200).items():
            for r in records:
                where = f"{tp.topic}[{tp.partition}]@{r.offset}"
                line = {
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "offset": r.offset,
                    "key": decode(r.key, args.format, registry, where + " key"),
                    "value": decode(r.value, args.format, registry, where + " value"),
                    "headers": [[k, b64(v)] for k, v in (r.headers or [])],
                }
                print(json.dumps(line, sort_keys=True), flush=True)
                count += 1
    consumer.close()


if __name__ == "__main__":
    main()
