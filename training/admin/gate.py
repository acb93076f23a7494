"""Admin for gate decisions: read-only evidence."""
