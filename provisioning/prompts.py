"""Arabic and English voice prompts, generated at set-up from text kept in the repo.

Text: `provisioning/prompts/<lang>.toml` (`[prompts]` name -> sentence, `[digits]` 0-9).
Sound: `espeak-ng -v <lang>` speaks it, `sox` makes it Asterisk-ready (8 kHz, mono, 16 bit).
No Arabic sound pack is packaged for Asterisk, so Arabic digits are made here too.

Where the files go: `generate_prompts(target_dir)` (or a function per language, see there) writes

    <target_dir>/<lang>/tawasul/<name>.wav          e.g. sounds/ar/tawasul/no-appointment.wav
    <target_dir>/<lang>/tawasul/digits/<N>.wav      N = 0..9

where `target_dir` is the host path of Asterisk's `<datadir>/sounds`
(under a root filesystem, `Runtime.sounds_dir` gives each language's folder). Asterisk finds `tawasul/<name>` under
the channel's language, and `ar/tawasul/<name>` whatever the channel's language (a sound name
with a language folder in it is also looked up without any language prefix).

Naming scheme (see `prompt_sequence`): the dialplan plays a prompt in both languages, the
centre's `prompt_language` first: `Playback(ar/tawasul/too-early&en/tawasul/too-early)`.
Names are the AGI reasons with `-` for `_` (`REASON_PROMPTS` maps them; `error` ->
`service-unavailable`). `tawasul/enter-code` and `tawasul/code-retry` are the names agi/variables.py
already plays with GET DATA (under the channel's language).

Idempotent and fast: a manifest per language folder (`.tawasul-prompts.json`) keeps a hash of what
made each file (text, voice, tool options); an unchanged prompt is not spoken again; the rest
are made in parallel. Files are written atomically, so Asterisk never plays half a file.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from collections.abc import Callable
from pathlib import Path

TEXT_DIR = Path(__file__).resolve().parent / "prompts"
LANGUAGES = ("ar", "en")          # every language made; the default order of playback
DEFAULT_FIRST = "ar"
FOLDER = "tawasul"
MANIFEST = ".tawasul-prompts.json"
VOICES = {"ar": "ar", "en": "en"}
ESPEAK_OPTIONS = ("-s", "150")    # words per minute
SOX_OPTIONS = ("-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer")
GENERATOR_VERSION = "1"

# Every prompt the dialplan may play. Keep in step with the .toml files (a test checks).
PROMPTS = (
    "welcome", "enter-code", "code-retry", "please-wait", "your-position", "session-ending",
    "no-appointment", "too-early", "too-late", "wrong-centre", "outside-hours",
    "governor-unavailable", "bad-code", "code-locked", "unknown-device", "service-unavailable",
    "leave-message", "goodbye",
    # the refusal's message offer
    "record-after-tone", "message-saved",
    # the waiting line (app_queue's announcements, queues.conf)
    "you-are-next", "you-are-number", "in-the-line", "more-than", "callers-ahead", "please-stay",
)
# AGI deny/wait reason (agi/variables.py) -> prompt name.
REASON_PROMPTS = {
    "no_appointment": "no-appointment",
    "too_early": "too-early",
    "too_late": "too-late",
    "wrong_centre": "wrong-centre",
    "outside_hours": "outside-hours",
    "governor_unavailable": "governor-unavailable",
    "governor_busy": "please-wait",
    "bad_code": "bad-code",
    "code_locked": "code-locked",
    "unknown_device": "unknown-device",
    "error": "service-unavailable",
}


class PromptError(RuntimeError):
    """Prompts could not be made (a tool is missing or failed)."""


@dataclass
class PromptReport:
    generated: list[str] = field(default_factory=list)   # relative paths made this run
    unchanged: list[str] = field(default_factory=list)   # relative paths already up to date

    def __str__(self) -> str:
        return f"{len(self.generated)} prompts generated, {len(self.unchanged)} unchanged"


def load_texts(language: str) -> dict[str, str]:
    """relative sound name (`tawasul/<name>`, `tawasul/digits/<N>`) -> sentence."""
    data = tomllib.loads((TEXT_DIR / f"{language}.toml").read_text(encoding="utf-8"))
    texts = {f"{FOLDER}/{name}": text for name, text in data.get("prompts", {}).items()}
    texts.update({f"{FOLDER}/digits/{digit}": text for digit, text in data.get("digits", {}).items()})
    return texts


def prompt_order(first_language: str | None) -> list[str]:
    """The languages in playback order: the centre's first, then the others."""
    first = first_language if first_language in LANGUAGES else DEFAULT_FIRST
    return [first, *[lang for lang in LANGUAGES if lang != first]]


def prompt_sequence(name: str, first_language: str | None = DEFAULT_FIRST) -> list[str]:
    """Sound names to play, in order, for prompt `name` (or an AGI reason such as `too_early`):
    `prompt_sequence("too_early", "en") == ["en/tawasul/too-early", "ar/tawasul/too-early"]`."""
    name = REASON_PROMPTS.get(name, name)
    if name not in PROMPTS and not name.startswith("digits/"):
        raise ValueError(f"unknown prompt {name!r}")
    return [f"{lang}/{FOLDER}/{name}" for lang in prompt_order(first_language)]


def playback_argument(name: str, first_language: str | None = DEFAULT_FIRST) -> str:
    """The same as one Playback()/Background() argument: `ar/tawasul/x&en/tawasul/x`."""
    return "&".join(prompt_sequence(name, first_language))


def _tools() -> tuple[str, str]:
    espeak, sox = shutil.which("espeak-ng"), shutil.which("sox")
    if not espeak or not sox:
        raise PromptError("espeak-ng and sox are needed to make the prompts (apt-get install espeak-ng sox)")
    return espeak, sox


def _recipe(language: str, text: str) -> str:
    material = json.dumps([GENERATOR_VERSION, VOICES[language], ESPEAK_OPTIONS, SOX_OPTIONS, text],
                          ensure_ascii=False)
    return hashlib.sha256(material.encode()).hexdigest()


def _speak(espeak: str, sox: str, language: str, text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.wav")
    spoken = subprocess.run([espeak, "-v", VOICES[language], *ESPEAK_OPTIONS, "--stdout", text],
                            capture_output=True, timeout=60, check=False)
    if spoken.returncode != 0 or not spoken.stdout:
        raise PromptError(f"espeak-ng failed for {path.name}: {spoken.stderr.decode(errors='replace').strip()}")
    converted = subprocess.run([sox, "-t", "wav", "-", *SOX_OPTIONS, str(tmp)], input=spoken.stdout,
                               capture_output=True, timeout=60, check=False)
    if converted.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise PromptError(f"sox failed for {path.name}: {converted.stderr.decode(errors='replace').strip()}")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def generate_prompts(target: Path | Callable[[str], Path], languages: tuple[str, ...] = LANGUAGES) -> PromptReport:
    """Make every prompt of every language; skip those whose text and recipe are unchanged.

    `target` is Asterisk's sounds folder (host path; prompts go to `<target>/<lang>/tawasul/`), or a
    function giving each language's own folder (for a root filesystem whose language folders are
    symbolic links that only resolve inside it: `Runtime.sounds_dir`)."""
    language_dir = target if callable(target) else (lambda language: Path(target) / language)
    report = PromptReport()
    espeak = sox = None
    for language in languages:
        folder = Path(language_dir(language))
        folder.mkdir(parents=True, exist_ok=True)
        manifest_path = folder / MANIFEST
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            manifest = {}
        todo = []
        for name, text in sorted(load_texts(language).items()):
            rel, recipe = f"{name}.wav", _recipe(language, text)
            if manifest.get(rel) == recipe and (folder / rel).is_file():
                report.unchanged.append(f"{language}/{rel}")
            else:
                todo.append((text, rel, recipe))
        if not todo:
            continue
        if espeak is None:
            espeak, sox = _tools()
        with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
            futures = [(rel, recipe, pool.submit(_speak, espeak, sox, language, text, folder / rel))
                       for text, rel, recipe in todo]
            for rel, recipe, future in futures:
                future.result()
                manifest[rel] = recipe
                report.generated.append(f"{language}/{rel}")
        tmp = manifest_path.with_name(f".{MANIFEST}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, manifest_path)
    for language in languages:
        link_digits(Path(language_dir(language)))
    return report


def link_digits(folder: Path) -> list[Path]:
    """`<lang>/digits/N.wav` -> `../tawasul/digits/N.wav` where the language has no digits of its own.

    app_queue says a caller's position with Asterisk's number sayer, which plays `digits/N` in the
    channel's language. English has Asterisk's packaged digits (left alone); Arabic has none, so
    Tawasul's own Arabic digits stand in (positions are announced up to 9). Returns links made."""
    made = []
    for digit in range(10):
        own = folder / FOLDER / "digits" / f"{digit}.wav"
        digits = folder / "digits"
        if not own.is_file() or any(digits.glob(f"{digit}.*")):
            continue
        digits.mkdir(exist_ok=True)
        link = digits / f"{digit}.wav"
        link.symlink_to(Path("..") / FOLDER / "digits" / f"{digit}.wav")
        made.append(link)
    return made


# --- Music on hold for the waiting line: calm chords made by sox, no recording of anyone --------

MUSIC_FILE = "tawasul-calm.wav"
# Slow chords (Hz), each held a few seconds with soft fades; quiet, so announcements stand out.
MUSIC_CHORDS = ((220.0, 277.18, 329.63), (196.0, 246.94, 293.66), (174.61, 220.0, 261.63), (196.0, 246.94, 329.63))
MUSIC_CHORD_SECONDS = 6


def _music_recipe() -> str:
    material = json.dumps([GENERATOR_VERSION, MUSIC_CHORDS, MUSIC_CHORD_SECONDS, SOX_OPTIONS])
    return hashlib.sha256(material.encode()).hexdigest()


def generate_music(folder: Path) -> bool:
    """Make the waiting line's music in `folder` (host path of `<instance_dir>/moh`, see
    provisioning.render.MOH_FOLDER) unless it is already there from the same recipe. True if made."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # the stamp beside the folder, not in it: every file in the folder is music to Asterisk
    target, stamp = folder / MUSIC_FILE, folder.parent / f".{folder.name}.tawasul-music"
    recipe = _music_recipe()
    if target.is_file() and stamp.is_file() and stamp.read_text().strip() == recipe:
        return False
    sox = shutil.which("sox")
    if not sox:
        raise PromptError("sox is needed to make the waiting line's music (apt-get install sox)")
    parts = []
    try:
        for index, chord in enumerate(MUSIC_CHORDS):
            part = folder / f".chord{index}.{os.getpid()}.wav"
            parts.append(part)
            synth = [arg for hz in chord for arg in ("sine", f"{hz}")]
            made = subprocess.run([sox, "-n", *SOX_OPTIONS, str(part), "synth", str(MUSIC_CHORD_SECONDS), *synth,
                                   "fade", "q", "1.5", str(MUSIC_CHORD_SECONDS), "1.5", "vol", "0.15"],
                                  capture_output=True, timeout=60, check=False)
            if made.returncode != 0:
                raise PromptError(f"sox failed making music: {made.stderr.decode(errors='replace').strip()}")
        tmp = folder / f".{MUSIC_FILE}.{os.getpid()}.tmp.wav"
        joined = subprocess.run([sox, *map(str, parts), *SOX_OPTIONS, str(tmp)], capture_output=True, timeout=60,
                                check=False)
        if joined.returncode != 0:
            raise PromptError(f"sox failed joining music: {joined.stderr.decode(errors='replace').strip()}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        stamp.write_text(recipe + "\n")
        return True
    finally:
        for part in parts:
            part.unlink(missing_ok=True)
