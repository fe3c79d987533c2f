"""A file sealed with a passphrase: scrypt derives a key, AES-256-GCM encrypts the content in chunks.

Layout: MAGIC, a JSON header line (format, scrypt parameters, salt), then chunks, each
`length (4 bytes) | ciphertext+tag`. A chunk's nonce is its index; its additional data binds the
header, and a flag marks the last chunk, so a reordered, cut or extended file fails to open, as
does a wrong passphrase (at the first chunk, before anything is handed on). Streams: a backup of
any size goes through in CHUNK-sized pieces. Every file has its own salt, hence its own key, which
is what makes counting nonces safe.
"""
from __future__ import annotations

import json
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

MAGIC = b"TAWASUL-SEALED\n"
CHUNK = 1024 * 1024
SCRYPT = {"n": 2 ** 17, "r": 8, "p": 1}  # ~0.3 s and 128 MiB once per file: slow for guessing
MIN_PASSPHRASE = 12


class WrongPassphrase(Exception):
    """The passphrase does not open the file, or the file was changed or cut."""


class NotSealed(Exception):
    """The file is not a sealed file (or not of a format this version reads)."""


def _key(passphrase: str, salt: bytes, params: dict) -> AESGCM:
    kdf = Scrypt(salt=salt, length=32, n=params["n"], r=params["r"], p=params["p"])
    return AESGCM(kdf.derive(passphrase.encode("utf-8")))


def _nonce(index: int) -> bytes:
    return index.to_bytes(12, "big")


def _aad(header: bytes, index: int, last: bool) -> bytes:
    return header + struct.pack(">Q?", index, last)


class SealingWriter:
    """A binary file-like object (write, close) sealing what is written into `out`."""

    def __init__(self, out, passphrase: str):
        if len(passphrase) < MIN_PASSPHRASE:
            raise ValueError(f"the passphrase must have at least {MIN_PASSPHRASE} characters")
        self.out, self.buffer, self.index = out, bytearray(), 0
        salt = os.urandom(16)
        self.header = json.dumps({"format": 1, "kdf": "scrypt", **SCRYPT, "salt": salt.hex(),
                                  "cipher": "AES-256-GCM", "chunk": CHUNK}).encode() + b"\n"
        self.aead = _key(passphrase, salt, SCRYPT)
        out.write(MAGIC + self.header)

    def write(self, data) -> int:
        self.buffer += data
        while len(self.buffer) > CHUNK:  # keep at least one byte back: the last chunk is sealed on close
            self._seal(bytes(self.buffer[:CHUNK]), last=False)
            del self.buffer[:CHUNK]
        return len(data)

    def _seal(self, plain: bytes, last: bool) -> None:
        sealed = self.aead.encrypt(_nonce(self.index), plain, _aad(self.header, self.index, last))
        self.out.write(struct.pack(">I", len(sealed)) + sealed)
        self.index += 1

    def close(self) -> None:
        self._seal(bytes(self.buffer), last=True)
        self.buffer.clear()


class OpeningReader:
    """A binary file-like object (read) giving back what was sealed in `source`."""

    def __init__(self, source, passphrase: str):
        if source.read(len(MAGIC)) != MAGIC:
            raise NotSealed("not a Tawasul backup (or a damaged one)")
        self.header = source.readline(4096)
        try:
            params = json.loads(self.header)
            if params.get("format") != 1:
                raise NotSealed(f"backup format {params.get('format')!r} is newer than this version reads")
            self.aead = _key(passphrase, bytes.fromhex(params["salt"]), params)
        except (ValueError, KeyError, TypeError) as exc:
            raise NotSealed(f"damaged backup header: {exc}") from None
        self.source, self.index, self.buffer, self.pos, self.done = source, 0, b"", 0, False
        self._next()  # a wrong passphrase fails here, before the caller reads anything

    def _next(self) -> None:
        size = self.source.read(4)
        if len(size) != 4:
            raise WrongPassphrase("the backup is cut short")
        sealed = self.source.read(struct.unpack(">I", size)[0])
        for last in (False, True):
            try:
                plain = self.aead.decrypt(_nonce(self.index), sealed, _aad(self.header, self.index, last))
                break
            except InvalidTag:
                continue
        else:
            raise WrongPassphrase("wrong passphrase, or the backup was changed")
        self.index += 1
        self.buffer, self.pos = self.buffer[self.pos:] + plain, 0
        if last:
            if self.source.read(1):
                raise WrongPassphrase("the backup has data after its end")
            self.done = True

    def read(self, size: int = -1) -> bytes:
        while not self.done and (size < 0 or len(self.buffer) - self.pos < size):
            self._next()
        end = len(self.buffer) if size < 0 else min(len(self.buffer), self.pos + size)
        data, self.pos = self.buffer[self.pos:end], end
        return data
