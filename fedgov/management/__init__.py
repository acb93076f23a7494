"""fedgov's own management commands."""
