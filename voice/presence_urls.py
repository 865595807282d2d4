from django.urls import path

from voice import presence_api

urlpatterns = [
    path("campaign/<int:campaign_id>/gone", presence_api.campaign_gone, name="api-campaign-gone"),
]
