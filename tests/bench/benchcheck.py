"""Helpers for the `ringfill bench` tests: running the binary, and checking a
result file against bench/result.schema.json with a small validator for the
part of JSON Schema that file uses (standard library only, like the other
Python tests; the jsonschema package is used as well when it is installed).
"""

import json
import os
import subprocess
import sys

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench",
                           "result.schema.json")
SKIP = 77


def ringfill():
    """The binary from $RINGFILL; exits 77 (skip) when it is not set."""
    exe = os.environ.get("RINGFILL")
    if not exe or not os.access(exe, os.X_OK):
        print("RINGFILL not set to the ringfill binary; skipping")
        sys.exit(SKIP)
    return exe


def run(*args, timeout=600):
    return subprocess.run([ringfill(), "bench", *args], capture_output=True, text=True,
                          timeout=timeout)


def load_schema():
    with open(SCHEMA_PATH) as f:
        return json.load(f)


TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def problems(value, schema, where="$"):
    """Every way value breaks schema, as readable lines (empty when valid)."""
    out = []
    types = schema.get("type")
    if types is not None:
        types = types if isinstance(types, list) else [types]
        if not any(TYPES[t](value) for t in types):
            return [f"{where}: {value!r} is not of type {types}"]
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{where}: {value!r} not one of {schema['enum']}")
    if TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            out.append(f"{where}: {value} < {schema['minimum']}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            out.append(f"{where}: {value} <= {schema['exclusiveMinimum']}")
    if isinstance(value, str) and len(value) < schema.get("minLength", 0):
        out.append(f"{where}: string shorter than {schema['minLength']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            out.append(f"{where}: fewer than {schema['minItems']} items")
        for i, item in enumerate(value):
            out += problems(item, schema.get("items", {}), f"{where}[{i}]")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                out.append(f"{where}: missing {key!r}")
        for key, item in value.items():
            if key in props:
                out += problems(item, props[key], f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                out.append(f"{where}: unexpected key {key!r}")
    return out


def validate(doc):
    """Problems of a parsed result file; also runs jsonschema when present."""
    schema = load_schema()
    found = problems(doc, schema)
    try:
        import jsonschema
    except ImportError:
        return found
    validator = jsonschema.Draft202012Validator(schema)
    return found + [f"jsonschema: {e.message}" for e in validator.iter_errors(doc)]


def consistency_problems(rec, runs):
    """Ways a record's numbers disagree with each other: the value is the
    median of runs, min and max are theirs, the ratio is ringfill over the
    peer (inverted for lower-is-better). Empty when consistent."""
    import statistics
    where = "%s/%s %s" % (rec["suite"], rec["case"], rec["metric"])
    out = []

    def close(a, b):
        return abs(a - b) <= 1e-6 * max(abs(a), abs(b), 1e-12)

    if len(rec["runs"]) != runs:
        out.append("%s: %d runs, expected %d" % (where, len(rec["runs"]), runs))
    if not close(rec["value"], statistics.median(rec["runs"])):
        out.append("%s: value is not the median of runs" % where)
    if rec["min"] != min(rec["runs"]) or rec["max"] != max(rec["runs"]):
        out.append("%s: min/max are not those of runs" % where)
    if rec["peer"] is None:
        if rec["ratio"] is not None:
            out.append("%s: a ratio without a peer" % where)
        return out
    p = rec["peer"]
    if len(p["runs"]) != runs or not close(p["value"], statistics.median(p["runs"])):
        out.append("%s: the peer's value is not the median of its %d runs" % (where, runs))
    want = rec["value"] / p["value"] if rec["direction"] == "higher" \
        else p["value"] / rec["value"]
    if not close(rec["ratio"], want):
        out.append("%s: ratio %r, expected %r" % (where, rec["ratio"], want))
    return out
