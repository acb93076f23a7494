"""Admin for runs, DPIAs and rounds."""
