"""Training runs, rounds, the GDPR gate, approvals, tickets and model updates."""
