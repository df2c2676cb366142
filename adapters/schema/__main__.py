"""Regenerate adapters/schema/canonical-record-<version>.json from the model."""

import sys

from adapters.canonical import write_json_schema

sys.stdout.write(f"wrote {write_json_schema()}\n")
