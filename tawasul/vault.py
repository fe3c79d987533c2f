"""Device SIP secrets, encrypted at rest (Fernet) with a key kept in the state folder."""
from __future__ import annotations

import os
import secrets

from cryptography.fernet import Fernet, InvalidToken

from tawasul.settings import Settings


class Vault:
    def __init__(self, key: bytes):
        self._fernet = Fernet(key)

    @classmethod
    def for_settings(cls, settings: Settings) -> "Vault":
        path = settings.secrets_dir / "device.key"
        if not path.exists():
            settings.secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(Fernet.generate_key())
        return cls(path.read_bytes().strip())

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ValueError("device secret cannot be decrypted with this state folder's key") from None


def new_sip_secret() -> str:
    return secrets.token_urlsafe(18)
