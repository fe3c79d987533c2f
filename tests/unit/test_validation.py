import pytest

from tawasul import references, validation
from tawasul.validation import InvalidInput, make_national_id


@pytest.mark.parametrize("good", ["1123456780", "1000000008", make_national_id("2", "98765432")])
def test_valid_national_ids_are_accepted(good):
    assert validation.national_id(f" {good} ") == good


@pytest.mark.parametrize("bad, why", [
    ("1123456781", "check digit"),
    ("112345678", "10 digits"),
    ("11234567801", "10 digits"),
    ("11234567a0", "10 digits"),
    ("3123456780", "start with 1"),
    ("", "10 digits"),
])
def test_invalid_national_ids_say_why(bad, why):
    with pytest.raises(InvalidInput) as refused:
        validation.national_id(bad)
    assert refused.value.field == "national_id"
    assert why in refused.value.message


def test_every_single_digit_typo_is_caught():
    good = make_national_id("1", "23456789")
    for position in range(1, 10):
        for digit in "0123456789":
            typo = good[:position] + digit + good[position + 1:]
            if typo != good:
                with pytest.raises(InvalidInput):
                    validation.national_id(typo)


@pytest.mark.parametrize("typed", ["0501234567", "+966501234567", "966 50 123 4567", "050-123-4567"])
def test_saudi_mobiles_are_normalised_to_e164(typed):
    assert validation.mobile(typed) == "+966501234567"


@pytest.mark.parametrize("bad, why", [
    ("0112345678", "mobile"),        # a Riyadh landline
    ("12345", "valid"),
    ("not a number", "phone number"),
    ("", "phone number"),
])
def test_bad_mobiles_are_refused(bad, why):
    with pytest.raises(InvalidInput) as refused:
        validation.mobile(bad)
    assert why in refused.value.message


def test_names_are_tidied_and_required():
    assert validation.person_name("  محمد   بن  علي ") == "محمد بن علي"
    with pytest.raises(InvalidInput):
        validation.person_name(" ")


def test_references_are_readable_unique_and_forgiving():
    seen = {references.new_reference("complaint") for _ in range(20000)}
    assert len(seen) == 20000
    sample = next(iter(seen))
    assert sample.startswith("C-") and len(sample) == 16
    assert not set(sample.replace("-", "")[1:]) & set("ILOU")
    typed = sample.lower().replace("-", " ").replace("0", "o")
    assert references.normalise(typed) == sample
    assert references.normalise("C-123") == ""


def test_checkin_codes_are_six_digits():
    codes = [references.new_checkin_code() for _ in range(1000)]
    assert all(len(c) == 6 and c.isdigit() for c in codes)
    assert len(set(codes)) > 900
