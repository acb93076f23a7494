"""The DPO dashboard: server-rendered overview of runs, gate failures, consent and the ledger."""
