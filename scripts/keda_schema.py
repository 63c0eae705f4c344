"""Turn a KEDA CustomResourceDefinition into the JSON Schema the manifest tests check against.

    python -m scripts.keda_schema CRD.yaml OUT.json --source "kedacore/keda v2.20.2 (<commit>)"

The CRD's ``spec.versions[].schema.openAPIV3Schema`` (the served version) is written as is,
with a ``$comment`` naming where it came from; the tests (tests/deploy/test_k8s.py) validate
deploy/k8s's KEDA objects against it with check-jsonschema, no cluster needed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

LICENCE = "Apache-2.0 (KEDA's licence)"


def served_schema(crd: dict[str, Any], version: str | None = None) -> tuple[str, dict[str, Any]]:
    """(version name, openAPIV3Schema) of the named version, else of the storage version."""
    versions = crd["spec"]["versions"]
    chosen = next(
        v for v in versions if (v["name"] == version if version else v.get("storage", False))
    )
    return chosen["name"], chosen["schema"]["openAPIV3Schema"]


def json_schema(crd: dict[str, Any], source: str, version: str | None = None) -> dict[str, Any]:
    """The CRD's schema as a JSON Schema document that names its source and licence."""
    name, schema = served_schema(crd, version)
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    return {
        "$comment": (
            f"{kind} {group}/{name}: spec.versions[].schema.openAPIV3Schema of the CRD from "
            f"{source}, licence {LICENCE}; extracted by scripts/keda_schema.py."
        ),
        **schema,
    }


def main(argv: list[str] | None = None) -> int:
    """Write the schema file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("crd", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--source", required=True, help="repository, tag and commit of the CRD")
    parser.add_argument("--version", help="CRD version to take (default: the storage version)")
    args = parser.parse_args(argv)
    crd = yaml.safe_load(args.crd.read_text())
    document = json_schema(crd, args.source, args.version)
    args.out.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
