"""`tawasul users`: the staff, governor-office and IT accounts, from the server's shell. Works on a
new, empty database (it is brought to the newest schema first), so the first IT account needs no
demo mode. Each change is in the audit log as done by "cli:<the system user>"."""
from __future__ import annotations

import getpass

import click

from tawasul import users as accounts
from tawasul.clitools import fail, guarded
from tawasul.db import Database, upgrade
from tawasul.models import Role
from tawasul.settings import Settings

ROLES = click.Choice([r.value for r in Role])


def _database(settings: Settings) -> Database:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.db_url)
    return Database(settings.db_url)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"[:60]
    except (KeyError, OSError):  # a user id with no name (in some containers)
        return "cli"


def _typed_password(username: str) -> str:
    """A password typed twice (hidden), checked against the policy before anything is written."""
    first = click.prompt("New password", hide_input=True)
    if click.prompt("Repeat it", hide_input=True) != first:
        fail(f"password: {accounts.MISMATCH}")
    accounts.check_password_policy(username, first)
    return first


@click.group("users")
def users():
    """Accounts of staff, the governor's office and IT."""


@users.command("add")
@click.argument("username")
@click.option("--role", type=ROLES, required=True)
@click.option("--full-name", default="", help="The person's name, as shown in the pages.")
@click.option("--generate", is_flag=True,
              help="Generate a password and print it once; the user must choose their own at first sign-in.")
@click.pass_obj
@guarded
def add(settings: Settings, username: str, role: str, full_name: str, generate: bool):
    """Add an account (the password is typed twice, or generated)."""
    db = _database(settings)
    with db.read() as session:  # refuse a taken or malformed name before asking for a password
        accounts.check_new_username(session, username)
    password = None if generate else _typed_password(username)
    with db.write() as session:
        user, password = accounts.create_user(session, username, Role(role), full_name, password,
                                              actor=_actor(), must_change=generate)
        name = user.username
    db.dispose()
    click.echo(f"added {name} ({role})")
    if generate:
        click.echo(f"one-time password (shown once; {name} chooses a new one at first sign-in): {password}")


@users.command("list")
@click.pass_obj
@guarded
def list_(settings: Settings):
    """Every account: username, role, full name, active, must change password, last sign-in."""
    db = _database(settings)
    with db.read() as session:
        rows = accounts.listing(session)
        if not rows:
            click.echo("no accounts (add one with: tawasul users add NAME --role it_admin)")
        for u in rows:
            last = u.last_login_at.strftime("%Y-%m-%d %H:%M UTC") if u.last_login_at else "never"
            click.echo(f"{u.username:20}  {u.role.value:16}  {'active' if u.active else 'disabled':8}  "
                       f"{'must-change' if u.must_change_password else '-':11}  last sign-in {last:20}  {u.full_name}")
    db.dispose()


@users.command("passwd")
@click.argument("username")
@click.option("--generate", is_flag=True,
              help="Generate a password and print it once; the user must choose their own at next sign-in.")
@click.pass_obj
@guarded
def passwd(settings: Settings, username: str, generate: bool):
    """Set an account's password (typed twice, or generated); its sessions end."""
    db = _database(settings)
    with db.read() as session:
        name = accounts.by_username(session, username).username
    password = None if generate else _typed_password(name)
    with db.write() as session:
        password = accounts.set_password(session, accounts.by_username(session, name), password,
                                         actor=_actor(), must_change=generate)
    db.dispose()
    click.echo(f"password of {name} changed; its sessions have ended")
    if generate:
        click.echo(f"one-time password (shown once; {name} chooses a new one at next sign-in): {password}")


def _change(settings: Settings, username: str, change) -> str:
    db = _database(settings)
    with db.write() as session:
        user = accounts.by_username(session, username)
        change(session, user)
        name = user.username
    db.dispose()
    return name


@users.command("disable")
@click.argument("username")
@click.pass_obj
@guarded
def disable(settings: Settings, username: str):
    """Disable an account: it cannot sign in, and its sessions end."""
    name = _change(settings, username, lambda session, user: accounts.set_active(session, user, False, _actor()))
    click.echo(f"{name} disabled")


@users.command("enable")
@click.argument("username")
@click.pass_obj
@guarded
def enable(settings: Settings, username: str):
    """Enable a disabled account."""
    name = _change(settings, username, lambda session, user: accounts.set_active(session, user, True, _actor()))
    click.echo(f"{name} enabled")


@users.command("role")
@click.argument("username")
@click.argument("role", type=ROLES)
@click.pass_obj
@guarded
def role(settings: Settings, username: str, role: str):
    """Give an account another role; its sessions end."""
    name = _change(settings, username, lambda session, user: accounts.set_role(session, user, Role(role), _actor()))
    click.echo(f"{name} is now {role}")
