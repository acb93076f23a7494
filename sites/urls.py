"""API routes of the sites app."""

from rest_framework.routers import DefaultRouter

from sites import api

router = DefaultRouter(trailing_slash=False)
router.register("sites", api.SiteViewSet, basename="site")
router.register("purposes", api.PurposeViewSet, basename="purpose")
router.register("datasets", api.DatasetViewSet, basename="dataset")
router.register("policies", api.PolicyViewSet, basename="policy")
router.register("consents", api.ConsentViewSet, basename="consent")
router.register("consent-events", api.ConsentEventViewSet, basename="consent-event")

urlpatterns = router.urls
