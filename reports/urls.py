"""API routes of reports; included under /api/v1/ by fedgov/api_urls.py."""

from django.urls import path

from reports import api

urlpatterns = [
    path("reports", api.ReportList.as_view(), name="reports"),
    path("reports/art30", api.Art30View.as_view(), name="report-art30"),
    path("reports/lineage", api.LineageView.as_view(), name="report-lineage"),
    path("reports/<uuid:public_id>", api.ReportDetail.as_view(), name="report"),
    path("reports/<uuid:public_id>/download", api.ReportDownload.as_view(), name="report-download"),
]
