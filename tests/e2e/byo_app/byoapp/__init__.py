"""A user's own Flower app under fedgov (end-to-end test only)."""
