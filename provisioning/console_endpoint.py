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
from dataclasses import dataclass

from provisioning.rows import REALM, md5_digest

ENDPOINT = "governor-console"
ASTDB_PREFIX = "tawasul"           # sorcery.conf: auth = astdb,<prefix>  -> family <prefix>/auth
ASTDB_FAMILY = f"{ASTDB_PREFIX}/auth"
WS_PATH = "/ws"


def enabled(settings) -> bool:
    return bool(settings.webrtc_port)


def _host(settings) -> str:
    return f"[{settings.sip_host}]" if ":" in settings.sip_host else settings.sip_host


def ws_url(settings) -> str:
    return f"wss://{_host(settings)}:{settings.webrtc_port}{WS_PATH}"


@dataclass(frozen=True)
class Credentials:
    """What the console page needs to register; `password` goes to that page only."""

    ws_url: str
    uri: str
    username: str
    password: str
    realm: str = REALM

    def for_page(self) -> dict:
        return {"ws": self.ws_url, "uri": self.uri, "username": self.username,
                "password": self.password, "realm": self.realm}


def issue(settings) -> tuple[Credentials, list[dict]]:
    """New credentials and the AMI actions that make Asterisk accept them (and only them)."""
    password = secrets.token_urlsafe(24)
    auth = {"type": "auth", "auth_type": "digest", "username": ENDPOINT, "realm": REALM,
            "password_digest": f"MD5:{md5_digest(ENDPOINT, password)}"}
    action = {"Action": "DBPut", "Family": ASTDB_FAMILY, "Key": ENDPOINT,
              "Val": json.dumps(auth, separators=(",", ":"))}
    return Credentials(ws_url(settings), f"sip:{ENDPOINT}@{_host(settings)}", ENDPOINT, password), [action]


def revoke_actions() -> list[dict]:
    """Delete the digest: nothing can register as the console afterwards (a page still registered
    unregisters as it stops; a page that died is dropped by qualify, its call by the slot limit)."""
    return [{"Action": "DBDel", "Family": ASTDB_FAMILY, "Key": ENDPOINT}]
