"""Checks on what people type: Saudi national ID / iqama numbers and mobile numbers."""
from __future__ import annotations

import re

import phonenumbers


class InvalidInput(ValueError):
    """Input a person typed that the system refuses, with a message fit to show them."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Conflict(InvalidInput):
    """Refused because of the state of the thing (taken, cancelled, closed, past), not the input's form."""


def national_id(value: str) -> str:
    """A 10-digit Saudi national ID (starts with 1) or iqama (starts with 2), Luhn check digit."""
    digits = (value or "").strip()
    if len(digits) != 10 or not digits.isdigit():
        raise InvalidInput("national_id", "must be 10 digits")
    if digits[0] not in "12":
        raise InvalidInput("national_id", "must start with 1 (national ID) or 2 (iqama)")
    total = 0
    for position, char in enumerate(digits):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            digit = digit // 10 + digit % 10
        total += digit
    if total % 10:
        raise InvalidInput("national_id", "check digit does not match; please re-check the number")
    return digits


def mobile(value: str, region: str = "SA") -> str:
    """A mobile number, returned in E.164 form (+9665XXXXXXXX)."""
    try:
        number = phonenumbers.parse((value or "").strip(), region)
    except phonenumbers.NumberParseException:
        raise InvalidInput("mobile", "is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput("mobile", "is not a valid number")
    if phonenumbers.number_type(number) not in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        raise InvalidInput("mobile", "must be a mobile number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def person_name(value: str) -> str:
    name = " ".join((value or "").split())
    if len(name) < 2:
        raise InvalidInput("name", "is required")
    if len(name) > 200:
        raise InvalidInput("name", "is too long (200 characters at most)")
    return name


def make_national_id(prefix: str = "1", body: str = "00000000") -> str:
    """The valid ID for 9 leading digits: appends the check digit (demo data and tests)."""
    stem = (prefix + body)[:9]
    for check in "0123456789":
        try:
            return national_id(stem + check)
        except InvalidInput:
            continue
    raise AssertionError("unreachable: one check digit always fits")


_NOT_FOR_DISPLAY = re.compile(r'[\x00-\x1f\x7f;\[\]"<>\\]')


def display_text(value: str) -> str:
    """Free text (a citizen's name, a label) made safe for a SIP caller ID name or a config comment:
    control characters, quotes, angle brackets, backslashes, ; [ ] become spaces (a name can then
    neither end the quoted name nor start another header line)."""
    return _NOT_FOR_DISPLAY.sub(" ", value or "").strip() or "-"
