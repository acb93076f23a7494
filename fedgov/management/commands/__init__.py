"""serve, createuser."""
