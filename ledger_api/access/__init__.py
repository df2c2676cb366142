"""The access rule of the ledger, free of chain and database: may organisation X read record R of owner O
for purpose P at this moment (:mod:`ledger_api.access.decision`)."""
