#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""schemas/validate.py SCHEMA FILE...: validate JSON files against a JSON
Schema (python3-jsonschema, Draft 2020-12, formats checked).  Prints one
line per violation (at most 20 a file); exit 0 valid, 1 invalid, 2 bad input."""
import json
import sys

try:
    import jsonschema
except ImportError:
    print("validate.py: python3-jsonschema is not installed", file=sys.stderr)
    sys.exit(2)


def main():
    if len(sys.argv) < 3:
        print("usage: validate.py SCHEMA FILE...", file=sys.stderr)
        return 2
    try:
        with open(sys.argv[1]) as f:
            schema = json.load(f)
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
    except (OSError, ValueError, jsonschema.SchemaError) as e:
        print(f"validate.py: {sys.argv[1]}: {e}", file=sys.stderr)
        return 2
    v = cls(schema, format_checker=cls.FORMAT_CHECKER)
    bad = 0
    for name in sys.argv[2:]:
        try:
            with open(name) as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            print(f"{name}: {e}")
            bad = 1
            continue
        errs = sorted(v.iter_errors(doc), key=lambda e: list(e.absolute_path))
        for e in errs[:20]:
            where = "/".join(str(p) for p in e.absolute_path)
            print(f"{name}: /{where}: {e.message[:200]}")
        if errs:
            bad = 1
    return bad


sys.exit(main())
