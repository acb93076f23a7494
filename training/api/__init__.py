"""The training app's REST API, one module per area."""
