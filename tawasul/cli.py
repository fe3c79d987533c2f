"""The `tawasul` command. Bad input: exit code 2 and one clear line on stderr, nothing written."""
from __future__ import annotations

import datetime as dt
from importlib.metadata import entry_points

import click

from tawasul import booking, demo, outbox, scheduling, settings as settings_module
from tawasul.db import Database, upgrade
from tawasul.models import AppointmentKind, Role
from tawasul.clitools import fail, guarded
from tawasul.settings import Settings, SettingsError
from tawasul.validation import InvalidInput


@click.group()
@click.version_option(package_name="tawasul", prog_name="tawasul")
@click.option("--state-dir", type=click.Path(file_okay=False), help="State folder (default var/).")
@click.option("--database-url", help="SQLAlchemy URL (default SQLite in the state folder).")
@click.option("--demo/--no-demo", default=None, help="Demo mode: seeds demo data, allows the demo secret key.")
@click.pass_context
def main(ctx, state_dir, database_url, demo):
    """Tawasul: booked, private video sessions between citizens and their governor."""
    try:
        ctx.obj = settings_module.load({"state_dir": state_dir, "database_url": database_url, "demo": demo})
    except SettingsError as exc:
        fail(str(exc))


def database(settings: Settings) -> Database:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    return Database(settings.db_url)


# --- db ---------------------------------------------------------------------------------------

@main.group("db")
def db_group():
    """Database schema."""


@db_group.command("upgrade")
@click.pass_obj
@guarded
def db_upgrade(settings: Settings):
    """Create the database or bring it to the newest schema."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.db_url)
    click.echo("database is up to date")


# --- demo -------------------------------------------------------------------------------------

@main.group("demo")
def demo_group():
    """Demo data."""


def seed_demo(settings: Settings) -> None:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.db_url)
    db = database(settings)
    with db.write() as session:
        passwords = demo.seed(session, settings)
    db.dispose()
    if passwords is None:
        click.echo("demo data already present; nothing changed")
        return
    path = demo.write_credentials(settings, passwords)
    click.echo(f"demo region seeded; accounts (also in {path}):")
    for username, password in passwords.items():
        click.echo(f"  {username:16} {password}")


@demo_group.command("seed")
@click.pass_obj
@guarded
def demo_seed(settings: Settings):
    """Seed the Medina demo region (first run only)."""
    seed_demo(settings)


# --- appointments -----------------------------------------------------------------------------

@main.group("appointments")
def appointments_group():
    """Book and list appointments."""


def parse_moment(text: str, zone, now: dt.datetime) -> dt.datetime:
    if text == "now":
        return now
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput("at", f"{text!r} is not an ISO date and time (e.g. 2026-12-06T09:00) or 'now'") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).astimezone(dt.timezone.utc)


def local_text(moment: dt.datetime, zone) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


@appointments_group.command("book")
@click.option("--centre", help="Centre code (e.g. BDR); required for a video session.")
@click.option("--national-id", required=True, help="National ID or iqama number.")
@click.option("--name", required=True)
@click.option("--mobile", required=True)
@click.option("--at", "at_text", required=True, help="ISO date and time in the region's zone, or 'now'.")
@click.option("--kind", type=click.Choice([k.value for k in AppointmentKind]), default="video", show_default=True)
@click.option("--subject", default="")
@click.option("--language", type=click.Choice(outbox.LANGUAGES), default="ar", show_default=True,
              help="The language of the citizen's SMS.")
@click.pass_obj
@guarded
def appointments_book(settings, centre, national_id, name, mobile, at_text, kind, subject, language):
    """Book a video session (or an in-person attendance) for a citizen; the SMS is queued as from the web."""
    kind = AppointmentKind(kind)
    now = dt.datetime.now(dt.timezone.utc)
    db = database(settings)
    with db.write() as session:
        plan = booking.schedule(session)
        zone = scheduling.zone(plan)
        at = parse_moment(at_text, zone, now)
        if at_text == "now" and kind is AppointmentKind.VIDEO:
            at = scheduling.video_slot_at(plan, now)
            if at is None:
                raise InvalidInput("at", "no session slot is running now; give a slot time with --at")
        place = booking.centre_by_code(session, centre) if kind is AppointmentKind.VIDEO else None
        citizen = booking.find_or_register_citizen(session, national_id, name, mobile)
        appointment = booking.book(session, citizen=citizen, kind=kind, at=at, centre=place,
                                   subject=subject, actor="cli", now=now)
        outbox.notify(session, plan, appointment, "booked", language)
        click.echo(f"booked {appointment.reference}  check-in code {appointment.checkin_code}  "
                   f"{local_text(appointment.slot_start, zone)} ({plan.timezone})  "
                   f"{place.code if place else 'in person at the emirate'}")


@appointments_group.command("list")
@click.option("--date", "day_text", help="Local date, YYYY-MM-DD (default today).")
@click.pass_obj
@guarded
def appointments_list(settings, day_text):
    """The day's appointments in time order."""
    db = database(settings)
    with db.read() as session:
        plan = booking.schedule(session)
        zone = scheduling.zone(plan)
        try:
            day = dt.date.fromisoformat(day_text) if day_text else dt.datetime.now(zone).date()
        except ValueError:
            raise InvalidInput("date", f"{day_text!r} is not a date (YYYY-MM-DD)") from None
        rows = booking.on_day(session, day)
        if not rows:
            click.echo(f"no appointments on {day.isoformat()}")
        for a in rows:
            where = a.centre.code if a.centre else "emirate"
            click.echo(f"{local_text(a.slot_start, zone)}  {a.reference}  {a.kind.value:9}  {where:7}  "
                       f"{a.status.value:10}  {a.citizen.name}")


# --- api-token --------------------------------------------------------------------------------

@main.group("api-token")
def api_token_group():
    """Bearer tokens for integrations using the JSON API (/api/v1)."""


@api_token_group.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True,
              help="The role the integration acts with.")
@click.pass_obj
@guarded
def api_token_create(settings: Settings, name: str, role: str):
    """Create a token for the integration NAME and print it (once: only its hash is kept)."""
    from tawasul import api_tokens

    db = database(settings)
    with db.write() as session:
        row, token = api_tokens.create(session, name, Role(role))
        token_id = row.id
    click.echo(f"token {token_id} for {name} ({role}); keep it now, it is not shown again:")
    click.echo(token)


@api_token_group.command("list")
@click.pass_obj
@guarded
def api_token_list(settings: Settings):
    """Every token: id, name, role, created, last used, revoked (never the token)."""
    from tawasul import api_tokens

    db = database(settings)
    with db.read() as session:
        rows = api_tokens.listing(session)
        if not rows:
            click.echo("no API tokens")
        for row in rows:
            used = row.last_used_at.strftime("%Y-%m-%d %H:%M") if row.last_used_at else "never"
            click.echo(f"{row.id:4}  {row.name:20}  {row.role.value:16}  created "
                       f"{row.created_at:%Y-%m-%d %H:%M}  used {used:16}  {'revoked' if row.revoked else 'active'}")


@api_token_group.command("revoke")
@click.argument("which")
@click.pass_obj
@guarded
def api_token_revoke(settings: Settings, which: str):
    """Revoke the token with id WHICH, or every active token named WHICH."""
    from tawasul import api_tokens

    db = database(settings)
    with db.write() as session:
        rows = api_tokens.revoke(session, which)
        ids = ", ".join(str(row.id) for row in rows)
    click.echo(f"revoked token {ids}")


# --- call -------------------------------------------------------------------------------------

@main.group("call")
def call_group():
    """Calls: the governor's "connect next", and the call records."""


@call_group.command("next")
@click.pass_obj
@guarded
def call_next(settings: Settings):
    """Ring the governor's desk, then the centre of the next due, checked-in appointment."""
    import asyncio

    from tawasul import ami, governor_calls

    db = database(settings)
    with db.read() as session:
        call = governor_calls.next_call(session, dt.datetime.now(dt.timezone.utc),
                                        settings.early_minutes, settings.late_minutes)
    try:
        [reply] = asyncio.run(ami.run_actions(settings, ami.login(settings, "web"),
                                              [governor_calls.originate_action(call)]))
    except ami.AmiUnavailable as exc:
        fail(f"asterisk: {exc}", code=1)
    if not ami.succeeded(reply):
        fail(f"asterisk refused the call: {reply.get('Message', '')}", code=1)
    with db.write() as session:
        governor_calls.record_request(session, call, "cli")
    click.echo(f"ringing the governor's desk, then {call.centre_endpoint} for {call.reference}")


@call_group.command("watch")
@click.pass_obj
@guarded
def call_watch(settings: Settings):
    """Record every call from Asterisk's events (runs until stopped)."""
    import asyncio
    import signal

    from tawasul import ami, callwatch, logs, metrics

    logs.configure(settings, text_format="%(asctime)s %(name)s %(levelname)s %(message)s")

    async def run():
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        await callwatch.watch(settings, ami.login(settings, "watch"), stop)

    try:
        asyncio.run(run())
    except metrics.MetricsUnavailable as exc:
        fail(str(exc), code=1)


def _add_plugin_commands() -> None:
    """Commands of the other rooms (agi, web, provisioning), registered as entry points so that
    the core never imports them."""
    for entry in entry_points(group="tawasul.commands"):
        try:
            main.add_command(entry.load(), entry.name)
        except Exception as exc:  # a broken room must not take the whole command down
            click.echo(f"tawasul: the {entry.name} commands are unavailable: {exc}", err=True)


_add_plugin_commands()

if __name__ == "__main__":  # pragma: no cover
    main()
