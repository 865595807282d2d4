"""Pages: sign in and out, the landing page, the agent's campaign list."""

from django.contrib.auth import views as auth_views
from django.urls import path

from campaigns import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("campaigns/", views.campaign_list, name="campaign_list"),
]
