"""What every `tawasul` command shares: one clear line and exit code 2 for refused input."""
from __future__ import annotations

import functools
import sys

import click
from sqlalchemy.exc import OperationalError

from tawasul.settings import SettingsError
from tawasul.validation import InvalidInput


def fail(message: str, code: int = 2):
    click.echo(f"tawasul: {message}", err=True)
    sys.exit(code)


def guarded(func):
    """Turns refusals into one line and exit code 2, an unreachable database into exit code 1."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except InvalidInput as exc:
            fail(f"{exc.field}: {exc.message}")
        except SettingsError as exc:
            fail(str(exc))
        except OperationalError as exc:
            fail(f"database unavailable: {exc.orig}", code=1)
    return wrapper
