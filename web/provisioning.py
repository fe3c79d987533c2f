"""Phone provisioning: Yealink and Grandstream phones fetch their profile here.

    GET /provisioning/<mac>.cfg        Yealink (VP59, T58W)
    GET /provisioning/cfg<mac>.xml     Grandstream (GXV33xx)
    GET /provisioning/ca.crt           the deployment CA (public), for the phones' trust store

A profile holds the device's SIP password, so every profile request needs the device's
token as HTTP Basic (any user name, the token as password: what phones are set up with, e.g.
`https://<mac>:<token>@host/provisioning/`). Never in the query string, which proxies log. The
token is derived, not stored: HMAC-SHA256 of the device id, MAC and token version under a key
derived from the app's secret key (`provisioning.phones.provisioning_token`; `tawasul phones
token DEVICE` prints it and the URL). IT rolls one device's token (`--roll`, or the devices
page); rotating the secret key revokes every token.

To a prober, an unknown MAC, a disabled device, a device of another vendor and a wrong token
look the same: the same status (404; a 403 would tell which MACs exist), body and headers.
Requests are rate limited per client IP (the app's Flask-Limiter; behind a proxy, the
`web_proxies` setting makes that the client's address from X-Forwarded-For). Responses carry
`Cache-Control: no-store`. Neither the token nor the password is ever logged.

HTTPS is the deployment's job (the reverse proxy in front of gunicorn); phones must be pointed
at an https:// URL.
"""
from __future__ import annotations

import hmac
import logging
import re
from pathlib import Path

from flask import Blueprint, Response, current_app, request

from provisioning import phones
from tawasul.vault import Vault
from web import db_of, limiter, settings_of

bp = Blueprint("provisioning", __name__, url_prefix="/provisioning")
log = logging.getLogger("tawasul.web.provisioning")

YEALINK = re.compile(r"^([0-9a-f]{12})\.cfg$")
GRANDSTREAM = re.compile(r"^cfg([0-9a-f]{12})\.xml$")
NOT_FOUND_BODY = "Not Found\n"
DEFAULT_RATE_LIMIT = "30 per minute"
_DUMMY_TOKEN_KEY = "tawasul-provisioning-dummy"


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _refused() -> Response:
    return _no_store(Response(NOT_FOUND_BODY, status=404, mimetype="text/plain"))


def _given_token() -> str:
    auth = request.authorization
    return auth.password if auth is not None and auth.password else ""


def _client() -> str:
    return request.remote_addr or "unknown"


# Per client IP; phones retry often, probers should not. PROVISIONING_RATE_LIMIT overrides it.
limiter.limit(lambda: current_app.config.get("PROVISIONING_RATE_LIMIT", DEFAULT_RATE_LIMIT))(bp)
bp.after_request(_no_store)  # also the 429 answer


@bp.get("/ca.crt")
def ca_certificate():
    path = Path(settings_of(current_app).state_dir) / "certs" / "ca.crt"
    if not path.is_file():
        return _refused()
    return _no_store(Response(path.read_bytes(), mimetype="application/x-x509-ca-cert"))


@bp.get("/", defaults={"filename": ""})
@bp.get("/<path:filename>")
def profile(filename: str):
    settings = settings_of(current_app)
    match, fmt = YEALINK.match(filename), "yealink"
    if match is None:
        match, fmt = GRANDSTREAM.match(filename), "grandstream"
    given = _given_token()
    if match is None:
        return _refused()
    mac = match.group(1)
    with db_of(current_app).read() as session:
        device = phones.device_by_mac(session, mac)
        usable = device is not None and device.enabled and (device.vendor or "").lower() == fmt
        # Compute a token either way, so timing does not tell a known MAC from an unknown one.
        expected = phones.provisioning_token(phones.token_secret(settings) if usable else _DUMMY_TOKEN_KEY,
                                             device if usable else _Unknown(mac))
        if not (usable and given and hmac.compare_digest(given.encode(), expected.encode())):
            log.info("provisioning: refused %s from %s", filename, _client())
            return _refused()
        try:
            base_url = request.url_root.rstrip("/") + bp.url_prefix + "/"
            profile_ = phones.profile_for(settings, device, Vault.for_settings(settings), base_url=base_url)
            name, text = phones.render_vendor(profile_, fmt)
        except phones.ProfileError:
            log.info("provisioning: no profile for %s", filename)
            return _refused()
    log.info("provisioning: served %s (device %s) to %s", name, device.sip_user, _client())
    mimetype = "text/plain" if fmt == "yealink" else "application/xml"
    return _no_store(Response(text, mimetype=mimetype))


class _Unknown:
    """Stands in for a device when none matches (same work, never a match)."""

    def __init__(self, mac: str):
        self.id, self.mac, self.token_version = 0, mac, 1
