"""The gateway's index (SQLModel): SQLite with WAL by default, PostgreSQL for several instances.

It is an index, never the truth: everything an auditor checks comes from the chain and the blob
store, and ``ledger reindex`` rebuilds the record tables from them.
"""
