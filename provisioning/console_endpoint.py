"""The governor's console as a video endpoint: the console page registers to Asterisk over a
secure websocket (WebRTC: ICE, DTLS-SRTP, VP8 and Opus; a local JsSIP bundle).

The endpoint is rendered in pjsip.conf (`governor-console`), but its auth is not: Asterisk reads
it from its own database (sorcery.conf: auth objects come from pjsip.conf, then from AstDB family
`tawasul/auth`). Each time the governor's office switches the console's video on, the web app
makes a new random password, hands it to that page only (never shown, never stored by Tawasul)
and puts only MD5(username:realm:password) into AstDB over AMI (DBPut). The previous password
stops working at once (no reload); switching the video off or logging out deletes the digest,
and with no digest nothing can register as the console.
"""
from __future__ import annotations

import json
import secrets

from provisioning.rows import REALM, md5_digest
from tawasul import ami

ENDPOINT = "governor-console"
ASTDB_PREFIX = "tawasul"           # sorcery.conf: auth = astdb,<prefix>  -> family <prefix>/auth
ASTDB_FAMILY = f"{ASTDB_PREFIX}/auth"
WS_PATH = "/ws"


def enabled(settings) -> bool:
    return bool(settings.webrtc_port)


def host(settings) -> str:
    """sip_host as it goes in a URL (an IPv6 address in brackets)."""
    return f"[{settings.sip_host}]" if ":" in settings.sip_host else settings.sip_host


def ws_url(settings) -> str:
    return f"wss://{host(settings)}:{settings.webrtc_port}{WS_PATH}"


def issue(settings) -> tuple[dict, list[dict]]:
    """New credentials, as the console page needs them (the password goes to that page only), and
    the AMI actions that make Asterisk accept them (and only them)."""
    password = secrets.token_urlsafe(24)
    auth = {"type": "auth", "auth_type": "digest", "username": ENDPOINT, "realm": REALM,
            "password_digest": f"MD5:{md5_digest(ENDPOINT, password)}"}
    action = {"Action": "DBPut", "Family": ASTDB_FAMILY, "Key": ENDPOINT,
              "Val": json.dumps(auth, separators=(",", ":"))}
    page = {"ws": ws_url(settings), "uri": f"sip:{ENDPOINT}@{host(settings)}", "username": ENDPOINT,
            "password": password, "realm": REALM}
    return page, [action]


def revoke(settings, timeout: float = 5) -> bool:
    """Delete the digest: nothing can register as the console afterwards (a page still registered
    unregisters as it stops; a page that died is dropped by qualify, its call by the slot limit).
    False if Asterisk could not be told; "not found" is fine (already off)."""
    if not enabled(settings):
        return True
    try:
        ami.run_actions_blocking(settings, ami.login(settings, "provision"),
                                 [{"Action": "DBDel", "Family": ASTDB_FAMILY, "Key": ENDPOINT}], timeout)
    except ami.AmiUnavailable:
        return False
    return True
