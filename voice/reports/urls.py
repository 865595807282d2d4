"""Manager reports, under /campaigns/<id>/ like the console and the wallboard."""

from django.urls import path

from voice.reports import views

urlpatterns = [
    path("campaigns/<int:campaign_id>/reports/", views.reports_page, name="campaign-reports"),
    path("campaigns/<int:campaign_id>/reports/calls.csv", views.calls_csv, name="campaign-reports-calls-csv"),
    path("campaigns/<int:campaign_id>/reports/dispositions.csv", views.dispositions_csv,
         name="campaign-reports-dispositions-csv"),
    path("campaigns/<int:campaign_id>/reports/contacts.csv", views.contacts_csv,
         name="campaign-reports-contacts-csv"),
    path("campaigns/<int:campaign_id>/reports/agents.csv", views.agents_csv, name="campaign-reports-agents-csv"),
    path("campaigns/<int:campaign_id>/reports/compliance/", views.compliance_page, name="campaign-compliance"),
    path("campaigns/<int:campaign_id>/reports/compliance.csv", views.compliance_csv, name="campaign-compliance-csv"),
]
