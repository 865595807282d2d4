from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

admin.site.site_header = "Dialer administration"
admin.site.site_title = "Dialer"
admin.site.index_title = "Campaigns, contacts and calls"
# The app list beside every page took a quarter of a 1280 px laptop screen from the lists managers read; the
# breadcrumbs and the home page lead everywhere it did.
admin.site.enable_nav_sidebar = False

# Twilio's webhooks: dialer/asgi.py gives them threads of their own.
WEBHOOK_PREFIX = "api/voice/"

urlpatterns = [
    path("admin/", admin.site.urls),
    # Browsers ask for /favicon.ico whatever the page says (JSON, plain errors): send them to the real one.
    path("favicon.ico", RedirectView.as_view(url=static("img/favicon.svg"), permanent=True)),
    path(WEBHOOK_PREFIX, include("voice.urls")),
    path("api/", include("voice.api_urls")),
    path("api/", include("voice.presence_urls")),
    path("", include("voice.page_urls")),
    path("", include("voice.console_urls")),
    path("", include("voice.reports.urls")),
    path("", include("campaigns.urls")),
]
