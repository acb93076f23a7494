"""Routes of the DPO dashboard, included at /dashboard/."""

from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from dashboard import views
from fedgov.second_factor_views import SecondFactorAuthenticationForm

app_name = "dashboard"

urlpatterns = [
    path("", views.DashboardView.as_view(), name="index"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="dashboard/login.html",
            next_page=reverse_lazy("dashboard:index"),
            authentication_form=SecondFactorAuthenticationForm,
        ),
        name="login",
    ),
    path(
        "logout/",
        auth_views.LogoutView.as_view(next_page=reverse_lazy("dashboard:login")),
        name="logout",
    ),
    path("ledger/verify", views.VerifyLedgerView.as_view(), name="verify-ledger"),
]
