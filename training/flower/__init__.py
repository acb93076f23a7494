"""fedgov's Flower adapter: its demo app, strategy with DP wrappers, supervision, benches.

With ``fedgov_flower`` (the installable package in ``fedgov-flower/``), the only code that
imports flwr. ``ticket``, ``update_hash``, ``client_mod``, ``governance``, ``dp`` and
``dp_mod`` here are that package's modules under their old names.
"""
