"""`tawasul phones export DEVICE --format baresip|yealink|grandstream --out DIR`."""
from __future__ import annotations

import getpass
from pathlib import Path

import click

from provisioning import phones as phone_profiles
from tawasul import administration
from tawasul.clitools import guarded
from tawasul.db import Database
from tawasul.vault import Vault


@click.group("phones")
def phones():
    """Phone profiles (baresip folders, Yealink and Grandstream files named by MAC)."""


@phones.command("export")
@click.argument("device")
@click.option("--format", "fmt", type=click.Choice(phone_profiles.FORMATS), default="baresip", show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="baresip: the profile folder itself; vendors: the folder that gets <mac>.cfg / cfg<mac>.xml.")
@click.option("--auto-answer/--no-auto-answer", default=None,
              help="The governor's desk answers by itself (default for the desk; never for a centre phone).")
@click.option("--dump-audio", is_flag=True,
              help="baresip, tests only: the phone writes what it sends and hears to WAV files in its folder.")
@click.pass_obj
@guarded
def export_command(settings, device, fmt, out_dir, auto_answer, dump_audio):
    """Write DEVICE's profile (DEVICE: its SIP user or MAC address). It holds the SIP password."""
    db = Database(settings.db_url)
    try:
        with db.read() as session:
            written = phone_profiles.export(settings, session, Vault.for_settings(settings), device, fmt,
                                            out_dir, auto_answer=auto_answer,
                                            dump_audio=dump_audio)
    finally:
        db.dispose()
    for path in written:
        click.echo(str(path))
    if fmt == "baresip":
        click.echo(f"run it with: baresip -f {out_dir}")


@phones.command("token")
@click.argument("device")
@click.option("--base-url", default="https://<web host>/provisioning/", show_default=True,
              help="Where the phones reach the web app (HTTPS, set up by the deployment).")
@click.option("--roll", is_flag=True, help="Make a new token first: the phone's old one stops working.")
@click.pass_obj
@guarded
def token_command(settings, device, base_url, roll):
    """Print DEVICE's provisioning token and the URL to set on the phone (keep it private)."""
    settings.require_production_secret()
    db = Database(settings.db_url)
    try:
        with (db.write() if roll else db.read()) as session:
            found = phone_profiles.find_device(session, device)
            if roll:
                administration.roll_provisioning_token(session, f"cli:{getpass.getuser()}", found)
            token = phone_profiles.provisioning_token(phone_profiles.token_secret(settings), found)
            mac = phone_profiles.normalize_mac(found.mac)
    finally:
        db.dispose()
    if not mac:
        raise phone_profiles.ProfileError(f"{found.sip_user} has no valid MAC address")
    click.echo(f"token: {token}")
    click.echo(f"provisioning URL (HTTP Basic, any user name): {base_url.rstrip('/')}/  user {mac}  password {token}")
