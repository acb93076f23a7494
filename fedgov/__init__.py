"""fedgov: compliance-first governance for federated learning across sovereign sites."""

from fedgov.celery import app as celery_app

__all__ = ("celery_app",)
