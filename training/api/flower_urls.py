"""API routes for the flower area (tickets, exclusions, update records)."""

from rest_framework.routers import DefaultRouter

router = DefaultRouter(trailing_slash=False)

urlpatterns = [*router.urls]
