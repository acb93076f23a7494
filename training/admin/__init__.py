"""Admin for the training app: each area registers its own models."""

from training.admin import gate, rounds, runs  # noqa: F401
