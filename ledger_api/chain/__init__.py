"""The one package of ``ledger_api`` that speaks to the chain (web3, JSON-RPC, solc, anvil)."""
