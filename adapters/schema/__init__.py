"""The published JSON Schema of the canonical record (regenerate with ``python -m adapters.schema``)."""
