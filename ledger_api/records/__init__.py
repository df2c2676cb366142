"""Records on the ledger: the anchor leaf encoding and batch manifests shared by gateway and auditor."""
