"""The live pages (agent console, manager wallboard) and the JSON reads they make."""

from django.urls import path

from voice import console

urlpatterns = [
    path("campaigns/<int:campaign_id>/", console.console, name="console"),
    path("campaigns/<int:campaign_id>/stats", console.console_stats, name="console-stats"),
    path("campaigns/<int:campaign_id>/calls/<int:call_id>/card", console.console_card, name="console-card"),
    path("campaigns/<int:campaign_id>/wallboard/", console.wallboard, name="wallboard"),
    path("campaigns/<int:campaign_id>/wallboard/stats", console.wallboard_stats, name="wallboard-stats"),
]
