"""Recordings and supervision: the JSON endpoints (next to the campaign API's paths) and the playback pages."""

from django.urls import path

from voice import views

urlpatterns = [
    path("api/campaign/<int:campaign_id>/supervise", views.supervise, name="api-campaign-supervise"),
    path("api/campaign/<int:campaign_id>/recording", views.recording_pause, name="api-campaign-recording"),
    path("recordings/<int:recording_id>/", views.recording_detail, name="recording-detail"),
    path("recordings/<int:recording_id>/audio", views.recording_audio, name="recording-audio"),
    path("recordings/<int:recording_id>/delete", views.recording_delete, name="recording-delete"),
]
