"""`python manage.py demo`: migrate, seed the demo campaign and logins, and serve the app."""

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from campaigns.demo import LOGINS, demo_seed


class Command(BaseCommand):
    help = "Run the demo on embedded defaults: migrate, seed, serve."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, port, **options):
        call_command("migrate", verbosity=0, interactive=False)
        campaign = demo_seed()
        self.stdout.write(self.style.SUCCESS(f"Demo campaign: {campaign.name} ({campaign.contacts.count()} contacts)"))
        for username, password, manager in LOGINS:
            self.stdout.write(f"  {'manager' if manager else 'agent':8} login: {username} / {password}")
        self.stdout.write(f"Open {settings.PUBLIC_BASE_URL}/ (Ctrl-C stops)")
        call_command("runserver", f"127.0.0.1:{port}", use_reloader=False)
