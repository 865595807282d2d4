from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

admin.site.site_header = "Dialer administration"
admin.site.site_title = "Dialer"
admin.site.index_title = "Campaigns, contacts and calls"

urlpatterns = [
    path("admin/", admin.site.urls),
    # Browsers ask for /favicon.ico whatever the page says (JSON, plain errors): send them to the real one.
    path("favicon.ico", RedirectView.as_view(url=static("img/favicon.svg"), permanent=True)),
    path("api/voice/", include("voice.urls")),
    path("api/", include("campaigns.api_urls")),
    path("", include("campaigns.console_urls")),
    path("", include("campaigns.urls")),
]
