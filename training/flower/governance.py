"""Moved to ``fedgov_flower.governance`` (installable, no Django); this name stays for fedgov.

The module object is the package's own, so patches and identity checks see one module.
"""

import importlib
import sys

# import_module, not ``from fedgov_flower import governance``: a package attribute may share
# a submodule's name.
sys.modules[__name__] = importlib.import_module("fedgov_flower.governance")
