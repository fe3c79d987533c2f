"""Unguessable, human-friendly references (read over the phone, typed on a keypad)."""
from __future__ import annotations

import secrets

# Crockford's base32 alphabet: no I, L, O or U, so nothing is misread.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PREFIXES = {"appointment": "A", "complaint": "C", "suggestion": "S", "directive": "D"}


def new_reference(kind: str) -> str:
    """e.g. A-7KD4-X9M2-QAZ1: 60 random bits, grouped in fours."""
    body = "".join(secrets.choice(ALPHABET) for _ in range(12))
    return f"{PREFIXES[kind]}-{body[0:4]}-{body[4:8]}-{body[8:12]}"


def normalise(reference: str) -> str:
    """What a person typed, made comparable: upper case, O->0, I/L->1, dashes placed."""
    raw = (reference or "").upper().replace("O", "0").replace("I", "1").replace("L", "1")
    chars = [c for c in raw if c.isalnum()]
    if len(chars) != 13:
        return ""
    return f"{chars[0]}-{''.join(chars[1:5])}-{''.join(chars[5:9])}-{''.join(chars[9:13])}"


def new_checkin_code() -> str:
    """Six digits, keyed on the centre phone's keypad."""
    return f"{secrets.randbelow(10**6):06d}"
