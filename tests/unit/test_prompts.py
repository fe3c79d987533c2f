"""Arabic and English prompts: 8 kHz mono WAV, both languages, idempotent, ordered per centre."""
from __future__ import annotations

import shutil
import tomllib
import wave

import pytest

from provisioning import prompts


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    target = tmp_path_factory.mktemp("sounds")
    report = prompts.generate_prompts(target)
    return target, report


def test_every_prompt_is_made_in_both_languages_as_8khz_mono_wav(made):
    target, report = made
    assert not report.unchanged
    for language in prompts.LANGUAGES:
        for name in [*prompts.PROMPTS, *(f"digits/{d}" for d in range(10))]:
            path = target / language / "tawasul" / f"{name}.wav"
            with wave.open(str(path)) as sound:
                assert (sound.getframerate(), sound.getnchannels(), sound.getsampwidth()) == (8000, 1, 2), path
                assert sound.getnframes() > 8000 * 0.2, path  # something was said


def test_second_run_makes_nothing(made):
    target, first = made
    again = prompts.generate_prompts(target)
    assert again.generated == [] and sorted(again.unchanged) == sorted(first.generated)


def test_a_changed_text_remakes_only_that_prompt(made, tmp_path, monkeypatch):
    target, _ = made
    texts = tmp_path / "texts"
    shutil.copytree(prompts.TEXT_DIR, texts)
    en = texts / "en.toml"
    en.write_text(en.read_text(encoding="utf-8").replace('goodbye = "', 'goodbye = "Farewell. '), encoding="utf-8")
    monkeypatch.setattr(prompts, "TEXT_DIR", texts)
    report = prompts.generate_prompts(target)
    assert report.generated == ["en/tawasul/goodbye.wav"]
    monkeypatch.undo()
    assert prompts.generate_prompts(target).generated == ["en/tawasul/goodbye.wav"]


def test_texts_cover_every_prompt_in_both_languages():
    for language in prompts.LANGUAGES:
        data = tomllib.loads((prompts.TEXT_DIR / f"{language}.toml").read_text(encoding="utf-8"))
        assert set(data["prompts"]) == set(prompts.PROMPTS), language
        assert set(data["digits"]) == {str(d) for d in range(10)}, language
    arabic = tomllib.loads((prompts.TEXT_DIR / "ar.toml").read_text(encoding="utf-8"))["prompts"]
    assert "تواصل" in arabic["welcome"] and "أمير المنطقة" in arabic["welcome"]


def test_prompt_sequence_follows_the_centre_language():
    assert prompts.prompt_sequence("too_early") == ["ar/tawasul/too-early", "en/tawasul/too-early"]
    assert prompts.prompt_sequence("too_early", "en") == ["en/tawasul/too-early", "ar/tawasul/too-early"]
    assert prompts.prompt_sequence("error", "xx")[0] == "ar/tawasul/service-unavailable"
    assert prompts.prompt_sequence("digits/7", "en") == ["en/tawasul/digits/7", "ar/tawasul/digits/7"]
    assert prompts.playback_argument("goodbye", "ar") == "ar/tawasul/goodbye&en/tawasul/goodbye"
    with pytest.raises(ValueError):
        prompts.prompt_sequence("no-such-prompt")


def test_every_agi_reason_has_a_prompt():
    from agi import variables as v

    reasons = {v.UNKNOWN_DEVICE, v.OUTSIDE_HOURS, v.NO_APPOINTMENT, v.TOO_EARLY, v.TOO_LATE, v.BAD_CODE,
               v.ERROR, v.GOVERNOR_BUSY}
    assert reasons <= set(prompts.REASON_PROMPTS)
    assert set(prompts.REASON_PROMPTS.values()) <= set(prompts.PROMPTS)
    assert v.PROMPT_ENTER_CODE == "tawasul/enter-code" and v.PROMPT_CODE_RETRY == "tawasul/code-retry"
