"""JSON API paths (seed-compatible)."""

from django.urls import path

from voice import api

urlpatterns = [
    path("campaign", api.campaign_create, name="api-campaign-create"),
    path("campaign/<int:campaign_id>", api.campaign_get, name="api-campaign"),
    path("campaign/<int:campaign_id>/join", api.campaign_join, name="api-campaign-join"),
    path("campaign/<int:campaign_id>/ready", api.campaign_ready, name="api-campaign-ready"),
    path("campaign/<int:campaign_id>/pause", api.campaign_pause, name="api-campaign-pause"),
    path("campaign/<int:campaign_id>/leave", api.campaign_leave, name="api-campaign-leave"),
    path("campaign/<int:campaign_id>/dial-next", api.campaign_dial_next, name="api-campaign-dial-next"),
    path("campaign/<int:campaign_id>/disposition", api.campaign_disposition, name="api-campaign-disposition"),
    path("campaign/<int:campaign_id>/hangup", api.campaign_hangup, name="api-campaign-hangup"),
    path("campaign/<int:campaign_id>/status", api.campaign_status, name="api-campaign-status"),
    path("campaign/<int:campaign_id>/end", api.campaign_end, name="api-campaign-end"),
    path("token", api.token, name="api-token"),
]
