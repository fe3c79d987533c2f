"""Every English string the web UI can show has an Arabic translation.

The messages are extracted as `pybabel extract` would with this method map and `-k _l -k lazy_gettext`:

    [python: web/**.py]
    [python: tawasul/**.py]
    [jinja2: web/templates/**.html]

A msgid counts as translated when some catalog under web/translations/<feature>/ar/ (Flask-Babel merges
them all, see web/i18n.py) gives it a non-empty, non-fuzzy msgstr: fuzzy entries are left out of the
compiled .mo, so the page would show English. Each catalog must also parse and compile, and every
msgstr must keep the placeholders of its msgid (%(name)s by name, %s by count; a plural form may
leave out %(num)s, as Arabic says one and two in the word itself).
"""
from __future__ import annotations

import io
import re
from collections import Counter
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "web" / "translations"
CATALOGS = sorted(TRANSLATIONS.glob("*/ar/LC_MESSAGES/messages.po"))
METHOD_MAP = [("web/**.py", "python"), ("tawasul/**.py", "python"),
              ("web/templates/**.html", "jinja2.ext:babel_extract")]
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}
# The lines of a .po file: babel's reader shrugs off a missing quote (the msgstr becomes empty) and
# keeps the last of two entries with the same msgid, so the syntax is checked here first.
PO_LINE = re.compile(r'(?P<keyword>msgctxt|msgid|msgid_plural|msgstr(?:\[\d+\])?)?\s*"(?P<text>(?:[^"\\]|\\.)*)"\s*')
# A printf conversion as Python's % operator reads it: %(name)s, %s, %d, %.1f, %%.
PLACEHOLDER = re.compile(r"%(?:\((?P<name>[^)]*)\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[a-zA-Z%]")


def _skip_hidden(dirname: str) -> bool:
    """Like babel's default directory filter (no .venv, .git, __pycache__)."""
    return not Path(dirname).name.startswith((".", "_"))


def _extract() -> dict[tuple[str, str | None], list[str]]:
    """(msgid, msgctxt) -> ["file:line", ...] for every message in the project."""
    found: dict[tuple[str, str | None], list[str]] = {}
    for filename, lineno, message, _comments, context in extract_from_dir(
            str(ROOT), METHOD_MAP, keywords=KEYWORDS, directory_filter=_skip_hidden):
        msgid = message[0] if isinstance(message, tuple) else message
        if msgid:
            found.setdefault((msgid, context), []).append(f"{Path(filename).as_posix()}:{lineno}")
    return found


def _read(path: Path):
    with open(path, "rb") as po_file:
        return read_po(po_file, locale="ar", abort_invalid=True)


def _where(location: str) -> tuple[str, int]:
    filename, _colon, line = location.rpartition(":")
    return filename, int(line)


def _translated(message) -> bool:
    if message.fuzzy:
        return False
    strings = message.string if isinstance(message.string, (tuple, list)) else (message.string,)
    return bool(strings) and all(s and s.strip() for s in strings)


def _placeholders(text: str) -> tuple[set[str], Counter]:
    named, positional = set(), Counter()
    for match in PLACEHOLDER.finditer(text):
        token = match.group(0)
        if match.group("name") is not None:
            named.add(token)
        else:
            positional[token] += 1
    return named, positional


@pytest.fixture(scope="module")
def extracted():
    return _extract()


def test_the_extraction_finds_python_and_template_messages(extracted):
    files = {loc.rsplit(":", 1)[0] for locs in extracted.values() for loc in locs}
    assert len(extracted) > 100, f"only {len(extracted)} messages extracted: is the method map right?"
    assert any(f.endswith(".html") for f in files), "no message from a template"
    assert any(f.startswith("web/") and f.endswith(".py") for f in files), "no message from web/*.py"


def test_there_are_arabic_catalogs():
    assert CATALOGS, f"no catalogs under {TRANSLATIONS}"


def _syntax_errors(path: Path) -> list[str]:
    """Lines that are not a comment, blank or a (keyword and) quoted string; msgids given twice."""
    errors: list[str] = []
    seen: dict[tuple[str, str | None], int] = {}
    entry: dict[str, str | int] = {}
    keyword = None

    def close_entry():
        if "msgid" in entry:
            key = (entry["msgid"], entry.get("msgctxt"))
            if key in seen:
                errors.append(f"line {entry['line']}: msgid {key[0]!r} again (first at line {seen[key]})")
            seen.setdefault(key, entry["line"])
        entry.clear()

    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            close_entry()
            keyword = None
            continue
        match = PO_LINE.fullmatch(line)
        if match is None or (match.group("keyword") is None and keyword is None):
            errors.append(f"line {number}: {line!r}")
            continue
        if match.group("keyword"):
            keyword = match.group("keyword")
            if keyword in ("msgctxt", "msgid") and any(k.startswith("msgstr") for k in entry):
                close_entry()
            entry.setdefault("line", number)
            entry[keyword] = ""
        entry[keyword] += match.group("text")
    close_entry()
    return errors


@pytest.mark.parametrize("path", CATALOGS, ids=lambda p: p.relative_to(TRANSLATIONS).parts[0])
def test_catalog_parses_and_compiles(path):
    errors = _syntax_errors(path)
    assert not errors, f"{path} is not a valid catalog:\n  " + "\n  ".join(errors)
    catalog = _read(path)
    write_mo(io.BytesIO(), catalog)
    assert str(catalog.locale) == "ar"


def test_every_extracted_message_has_an_arabic_translation(extracted):
    translated = set()
    for path in CATALOGS:
        for message in _read(path):
            if message.id and _translated(message):
                msgid = message.id[0] if isinstance(message.id, tuple) else message.id
                translated.add((msgid, message.context))
    missing = {key: locs for key, locs in extracted.items() if key not in translated}
    report = "\n".join(f"  {', '.join(locs)}: {msgid!r}" + (f" (context {ctx!r})" if ctx else "")
                       for (msgid, ctx), locs in sorted(missing.items(), key=lambda kv: _where(kv[1][0])))
    assert not missing, f"{len(missing)} message(s) have no Arabic translation in {TRANSLATIONS}:\n{report}"


@pytest.mark.parametrize("path", CATALOGS, ids=lambda p: p.relative_to(TRANSLATIONS).parts[0])
def test_translations_keep_the_placeholders(path):
    wrong = []
    for message in _read(path):
        if not message.id or not _translated(message):
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, (tuple, list)) else (message.string,)
        expected = _placeholders(ids[0])
        for string in strings:
            got = _placeholders(string)
            if len(ids) > 1:  # a plural form may say the number in its word (دقيقتان: two minutes)
                got[0].add("%(num)s")
            if got != expected:
                wrong.append(f"  line {message.lineno}: {ids[0]!r} has {sorted(expected[0])} "
                             f"{sorted(expected[1].elements())}, msgstr {string!r} has {sorted(got[0])} "
                             f"{sorted(got[1].elements())}")
    assert not wrong, f"placeholders differ in {path}:\n" + "\n".join(wrong)
