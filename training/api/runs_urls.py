"""API routes for the runs area: runs, DPIAs, rounds."""

from rest_framework.routers import SimpleRouter

from training.api import runs

# SimpleRouter: the API root view already comes from sites.urls' DefaultRouter.
router = SimpleRouter(trailing_slash=False)
router.register("runs", runs.RunViewSet, basename="run")
router.register("dpias", runs.DpiaViewSet, basename="dpia")
router.register("rounds", runs.RoundViewSet, basename="round")

urlpatterns = [*router.urls]
