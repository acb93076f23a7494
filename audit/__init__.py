"""The tamper-evident ledger, signing keys, reports and the offline verifier."""
