"""fedgov's Flower adapter: the only package that imports flwr (strategy, client mod, apps).

Its pure modules (``update_hash``, ``ticket``) import neither Django nor flwr, so a site
or an auditor can run them alone.
"""
