"""The anchoring worker: the durable outbox between an acknowledged push and its anchor on chain."""
