"""WebSocket paths. dialer/asgi.py wraps them in session authentication and an Origin check."""

from django.urls import path

from realtime import consumers

websocket_urlpatterns = [
    path("ws/campaigns/<int:campaign_id>/", consumers.ConsoleConsumer.as_asgi(), name="ws-console"),
    path("ws/campaigns/<int:campaign_id>/wallboard/", consumers.WallboardConsumer.as_asgi(), name="ws-wallboard"),
]
