from django.core.management.base import BaseCommand

from voice import reconcile, services


class Command(BaseCommand):
    help = "Fetch calls with no news past their ring timeout plus a margin from Twilio and close them."

    def handle(self, *args, **options):
        fixed = reconcile.calls_reconcile()
        overdue = services.calls_abandon_overdue()
        self.stdout.write(f"reconciled {fixed} call(s); abandoned {overdue} overdue waiting human(s)")
