"""Department adapters: turn each department's own export into canonical records.

Public API::

    from adapters import ImportContext, import_file, get_adapter
    report = import_file("incidents.csv", "police.incidents",
                         context=ImportContext(owner_org="org-police-1", community_code="330106001001"))
    print(report.to_text())

The package imports neither web3 nor fastapi: department-side tools can use it on their own.
"""

from adapters.canonical import (
    SCHEMA_VERSION,
    CanonicalRecord,
    Location,
    RecordType,
    Sensitivity,
    Source,
    Subject,
    blind_index,
    canonical_json,
    derive_legacy_record_id,
    derive_record_id,
    normalise_address,
    normalise_id_number,
    record_json_schema,
)
from adapters.errors import (
    AdapterError,
    AdapterRegistrationError,
    InputTooLargeError,
    MissingColumnsError,
    MissingContextError,
    RowValidationError,
    UnknownAdapterError,
    UnreadableFileError,
)
from adapters.importing import ImportReport, import_file
from adapters.limits import InputLimits
from adapters.protocol import Adapter, BadRow, ImportContext, ParsedRow
from adapters.registry import all_adapters, available_adapters, get_adapter

__all__ = [
    "SCHEMA_VERSION",
    "Adapter",
    "AdapterError",
    "AdapterRegistrationError",
    "BadRow",
    "CanonicalRecord",
    "ImportContext",
    "ImportReport",
    "InputLimits",
    "InputTooLargeError",
    "Location",
    "MissingColumnsError",
    "MissingContextError",
    "ParsedRow",
    "RecordType",
    "RowValidationError",
    "Sensitivity",
    "Source",
    "Subject",
    "UnknownAdapterError",
    "UnreadableFileError",
    "all_adapters",
    "available_adapters",
    "blind_index",
    "canonical_json",
    "derive_legacy_record_id",
    "derive_record_id",
    "get_adapter",
    "import_file",
    "normalise_address",
    "normalise_id_number",
    "record_json_schema",
]
