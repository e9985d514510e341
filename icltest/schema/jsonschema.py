"""The published JSON Schema for spec files, generated from the claim-kind registry.

Editors (VS Code YAML, JetBrains) use it for completion and inline errors: add
``# yaml-language-server: $schema=<path>/icltest.schema.json`` to the top of a spec.
``python -m icltest.schema.jsonschema`` rewrites the shipped file (the built-in kinds; a test
fails when it is stale). With claim kinds from other packages installed, write a schema that
covers them too with ``python -m icltest.schema.jsonschema --output my.schema.json``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).with_name("icltest.schema.json")


def generate() -> dict[str, Any]:
    """The JSON Schema of a spec file for every claim kind registered now."""
    from icltest.schema.spec import spec_model

    schema = spec_model().model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "icltest spec"
    return schema


def render() -> str:
    return json.dumps(generate(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    if "--check" in argv:
        current = SCHEMA_PATH.read_text(encoding="utf-8") if SCHEMA_PATH.is_file() else ""
        if current != text:
            print(f"{SCHEMA_PATH} is stale; run: python -m icltest.schema.jsonschema", file=sys.stderr)
            return 1
        return 0
    target = SCHEMA_PATH
    if "--output" in argv:
        index = argv.index("--output")
        if index + 1 >= len(argv):
            print("--output needs a file path", file=sys.stderr)
            return 2
        target = Path(argv[index + 1])
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
