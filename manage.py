#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dialer.settings")
    if sys.argv[1:2] == ["demo"]:
        # The demo is the one command that switches sandbox mode on by itself (settings read it at import).
        os.environ.setdefault("TWILIO_SANDBOX", "true")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
