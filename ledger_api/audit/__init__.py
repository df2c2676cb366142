"""Independent verification of records and of the access trail, from chain and storage only.

- :mod:`~ledger_api.audit.model` — what an audit establishes (:class:`AuditResult`, discrepancy kinds);
- :mod:`~ledger_api.audit.evidence` — what it checks: chain facts and storage facts;
- :mod:`~ledger_api.audit.collect` — gathering them from any JSON-RPC node and the blob storage;
- :mod:`~ledger_api.audit.verifier` — the checks, each failure a named discrepancy;
- :mod:`~ledger_api.audit.bundle` — the one-file bundle, verifiable with no network;
- :mod:`~ledger_api.audit.index_check` — opt-in comparison of the gateway's index (never evidence);
- :mod:`~ledger_api.audit.bench` — bundle verification throughput and size;
- ``report``, ``anomalies``, ``subject``, ``html`` — the auditor's reports built on an :class:`AuditResult`.
"""
