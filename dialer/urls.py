from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "Dialer administration"
admin.site.site_title = "Dialer"
admin.site.index_title = "Campaigns, contacts and calls"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/voice/", include("voice.urls")),
    path("api/", include("voice.api_urls")),
    path("", include("voice.console_urls")),
    path("", include("campaigns.urls")),
]
