"""Structural checks of our own rendered output, before anything is written.

`validate(files) -> list[str]`: an empty list means the files may be written. It catches what a
template or row mistake would produce: unparseable lines, duplicate sections, unknown template,
transport, auth, aor, context or endpoint references, empty values, plain-text passwords in
pjsip.conf, endpoints without mandatory SRTP over TLS, forbidden or autoloaded modules, an
AMI that is not on loopback or may run CLI commands, dialplan applications that could spy, record a
call or run a command (Record() only in the refusal context, only into the messages folder: the
caller's own message), a waiting line that records or has members other than the desks through the
member context, and music on hold that is not plain files.

One exception, for benchmarks only: with `load_test=True` (settings.load_test, off by default) the
`load` endpoint may be anonymous and plain (no auth, UDP, no SRTP), and only if it is exactly the
gated one: on the loopback UDP transport, matched by an identify on 127.0.0.2 alone, in the
load-test context. Without the flag an anonymous endpoint is refused as always.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from provisioning import console_endpoint, render
from tawasul.asterisk_modules import FORBIDDEN_MODULES

_HEADER = re.compile(r"^\[([^\]]+)\](?:\(([^)]*)\))?\s*$")
_OPTION = re.compile(r"^([A-Za-z0-9_.\-]+)\s*=>?\s*(.*)$")
PJSIP_TYPES = {"global", "system", "transport", "endpoint", "auth", "aor", "identify", "acl", "domain_alias"}
FORBIDDEN = set(FORBIDDEN_MODULES)
MAY_BE_EMPTY = {("extensions.conf", "globals")}


@dataclass
class Section:
    name: str
    line: int
    is_template: bool = False
    parents: list[str] = field(default_factory=list)
    options: list[tuple[str, str, int]] = field(default_factory=list)


def _strip_comment(line: str) -> str:
    out, i = [], 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line) and line[i + 1] == ";":
            out.append(";")
            i += 2
            continue
        if line[i] == ";":
            break
        out.append(line[i])
        i += 1
    return "".join(out).strip()


def parse(name: str, text: str, errors: list[str]) -> list[Section]:
    """Sections of an Asterisk config file; problems are appended to `errors`."""
    sections: list[Section] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw)
        if not line:
            continue
        where = f"{name}:{number}"
        if line.startswith("#"):
            errors.append(f"{where}: directive {line.split()[0]} is not allowed in rendered files")
            continue
        header = _HEADER.match(line)
        if header:
            flags = [p.strip() for p in (header.group(2) or "").split(",") if p.strip()]
            sections.append(Section(header.group(1).strip(), number, "!" in flags, [p for p in flags if p != "!"]))
            continue
        option = _OPTION.match(line)
        if not option:
            errors.append(f"{where}: cannot parse {line!r}")
        elif not sections:
            errors.append(f"{where}: option {option.group(1)} outside any section")
        else:
            sections[-1].options.append((option.group(1), option.group(2).strip(), number))
    return sections


def _check_common(name: str, sections: list[Section], errors: list[str]) -> None:
    templates: set[str] = set()
    for sec in sections:
        for parent in sec.parents:
            if parent not in templates:
                errors.append(f"{name}:{sec.line}: [{sec.name}] uses unknown template {parent!r}")
        if sec.is_template:
            if sec.name in templates:
                errors.append(f"{name}:{sec.line}: duplicate template [{sec.name}]")
            templates.add(sec.name)
        for key, value, line in sec.options:
            if value == "" and (name, sec.name) not in MAY_BE_EMPTY:
                errors.append(f"{name}:{line}: [{sec.name}] {key} has no value")


def _effective(sec: Section, templates: dict[str, Section]) -> dict[str, list[str]]:
    """Options of a section with its templates' options underneath (last one wins for single values)."""
    merged: dict[str, list[str]] = {}
    for parent in sec.parents:
        if parent in templates:
            for key, values in _effective(templates[parent], templates).items():
                merged.setdefault(key, []).extend(values)
    for key, value, _line in sec.options:
        merged.setdefault(key, []).append(value)
    return merged


def _check_load_endpoint(opts: dict, effective: dict, errors: list[str]) -> None:
    """The gated benchmark endpoint: loopback UDP, identified by 127.0.0.2 only, load-test context."""
    name = render.LOAD_ENDPOINT
    transport = (opts.get("transport") or [""])[-1]
    topts = effective.get((transport, "transport"), {})
    if (topts.get("protocol") or [""])[-1] != "udp" or not (topts.get("bind") or [""])[-1].startswith("127.0.0.1:"):
        errors.append(f"pjsip.conf: endpoint {name}: must use the UDP transport bound to 127.0.0.1")
    if (opts.get("context") or [""])[-1] != render.LOAD_CONTEXT:
        errors.append(f"pjsip.conf: endpoint {name}: context must be {render.LOAD_CONTEXT}")
    matches = [m.strip() for (_n, kind), o in effective.items() if kind == "identify"
               and (o.get("endpoint") or [""])[-1] == name for v in o.get("match", []) for m in v.split(",")]
    if matches != [render.LOAD_ADDRESS]:
        errors.append(f"pjsip.conf: endpoint {name}: must be identified by {render.LOAD_ADDRESS} only, not {matches}")


def _check_console_endpoint(opts: dict, effective: dict, errors: list[str]) -> None:
    """The governor's console: WebRTC (DTLS-SRTP) over the secure websocket, its auth the one in
    AstDB (sorcery.conf), never one in this file."""
    name = console_endpoint.ENDPOINT

    def first(key):
        return (opts.get(key) or [""])[-1]

    transport = effective.get((first("transport"), "transport"), {})
    if (transport.get("protocol") or [""])[-1] != "wss":
        errors.append(f"pjsip.conf: endpoint {name}: transport must be the secure websocket (wss)")
    for key, wanted in (("webrtc", "yes"), ("direct_media", "no"), ("auth", name), ("context", "from-governor")):
        if first(key) != wanted:
            errors.append(f"pjsip.conf: endpoint {name}: {key} must be {wanted}")
    if first("media_encryption") not in ("", "dtls"):
        errors.append(f"pjsip.conf: endpoint {name}: media must be DTLS-SRTP")
    if (name, "auth") in effective:
        errors.append(f"pjsip.conf: auth {name} must not be in the file (its digest is issued per console page)")


def _check_pjsip(sections: list[Section], contexts: set[str] | None, errors: list[str],
                 load_test: bool = False) -> set[str]:
    templates = {s.name: s for s in sections if s.is_template}
    objects: dict[tuple[str, str], Section] = {}
    effective = {}
    for sec in sections:
        if sec.is_template:
            continue
        opts = _effective(sec, templates)
        kind = (opts.get("type") or [""])[-1]
        if kind not in PJSIP_TYPES:
            errors.append(f"pjsip.conf:{sec.line}: [{sec.name}] has no known type ({kind or 'none'})")
            continue
        if (sec.name, kind) in objects:
            errors.append(f"pjsip.conf:{sec.line}: duplicate {kind} [{sec.name}]")
        objects[(sec.name, kind)] = sec
        effective[(sec.name, kind)] = opts
    for sec in sections:
        for key, _value, line in sec.options:
            if key in ("password", "md5_cred") or key.startswith("oauth_"):
                errors.append(f"pjsip.conf:{line}: [{sec.name}] holds a plain or weak credential ({key})")

    def first(opts, key):
        return (opts.get(key) or [""])[-1]

    def refs(opts, key):
        return [r.strip() for v in opts.get(key, []) for r in v.split(",") if r.strip()]

    for (name, kind), opts in effective.items():
        if kind == "endpoint" and load_test and name == render.LOAD_ENDPOINT and not refs(opts, "auth"):
            _check_load_endpoint(opts, effective, errors)  # the benchmark's gated anonymous endpoint
            continue
        if kind == "endpoint" and name == console_endpoint.ENDPOINT:
            _check_console_endpoint(opts, effective, errors)
            continue
        if kind == "endpoint":
            if first(opts, "context") == render.LOAD_CONTEXT:
                errors.append(f"pjsip.conf: endpoint {name}: only the load-test endpoint may use {render.LOAD_CONTEXT}")
            transport = first(opts, "transport")
            topts = effective.get((transport, "transport"))
            if topts is None:
                errors.append(f"pjsip.conf: endpoint {name}: unknown transport {transport!r}")
            elif first(topts, "protocol") != "tls":
                errors.append(f"pjsip.conf: endpoint {name}: transport {transport} is not TLS")
            for key, wanted in (("media_encryption", "sdes"), ("media_encryption_optimistic", "no"),
                                ("direct_media", "no")):
                if first(opts, key) != wanted:
                    errors.append(f"pjsip.conf: endpoint {name}: {key} must be {wanted}")
            for ref in refs(opts, "auth"):
                if (ref, "auth") not in effective:
                    errors.append(f"pjsip.conf: endpoint {name}: unknown auth {ref!r}")
            if not refs(opts, "auth"):
                errors.append(f"pjsip.conf: endpoint {name}: no auth (anonymous endpoints are not allowed)")
            for ref in refs(opts, "aors"):
                if (ref, "aor") not in effective:
                    errors.append(f"pjsip.conf: endpoint {name}: unknown aor {ref!r}")
            context = first(opts, "context")
            if contexts is not None and context not in contexts:
                errors.append(f"pjsip.conf: endpoint {name}: unknown dialplan context {context!r}")
            if name.lower() in ("anonymous", "guest"):
                errors.append(f"pjsip.conf: endpoint {name}: anonymous or guest endpoint")
        elif kind == "auth":
            if first(opts, "auth_type") != "digest" or not first(opts, "password_digest"):
                errors.append(f"pjsip.conf: auth {name}: needs auth_type = digest and a password_digest")
    return {name for (name, kind) in effective if kind == "endpoint"}


# Applications that could listen in, record a call or run a command: never in our dialplan (their
# modules are not loaded either). Record() is not among them: it records one channel only, the
# caller's own message after a refusal, and is checked below.
FORBIDDEN_APPS = re.compile(r"\b(MixMonitor|StopMixMonitor|Monitor|ChanSpy|ExtenSpy|System|TrySystem|Exec|ExecIf|"
                            r"ExecIfTime|Originate|SHELL)\(", re.I)
_RECORD = re.compile(r"\bRecord\(([^,)]*)")
_GOTO = re.compile(r"\b(?:Goto|Gosub)\(([^,()]+),([^,()]+),([^,()]+)\)")
_DIAL = re.compile(r"\bDial\(([^,)]+)")


def _check_extensions(sections: list[Section], endpoints: set[str] | None, errors: list[str],
                      message_dir: str | None = None) -> set[str]:
    names = [s.name for s in sections]
    contexts = set(names)
    for sec in sections:
        if names.count(sec.name) > 1 and sec is not next(s for s in sections if s.name == sec.name):
            errors.append(f"extensions.conf:{sec.line}: duplicate context [{sec.name}]")
        seen_exten = False
        for key, value, line in sec.options:
            if key == "exten":
                seen_exten = True
            elif key == "same" and not seen_exten:
                errors.append(f"extensions.conf:{line}: 'same' before any 'exten' in [{sec.name}]")
            elif key == "include" and value not in contexts:
                errors.append(f"extensions.conf:{line}: include of unknown context {value!r}")
            forbidden = FORBIDDEN_APPS.search(value)
            if forbidden:
                errors.append(f"extensions.conf:{line}: {forbidden.group(1)}() is never allowed")
            for match in _RECORD.finditer(value):
                if sec.name != render.DENY_CONTEXT:
                    errors.append(f"extensions.conf:{line}: Record outside [{render.DENY_CONTEXT}] "
                                  "(only a refused caller's own message is recorded)")
                if not message_dir or not match.group(1).startswith(message_dir + "/") or ".." in match.group(1):
                    errors.append(f"extensions.conf:{line}: Record must write into the messages folder "
                                  f"({message_dir or 'unknown'}/)")
            for match in _GOTO.finditer(value):
                if "$" not in match.group(1) and match.group(1) not in contexts:
                    errors.append(f"extensions.conf:{line}: Goto to unknown context {match.group(1)!r}")
            for match in _DIAL.finditer(value):
                for target in match.group(1).split("&"):
                    tech, _, resource = target.partition("/")
                    if tech != "PJSIP":
                        errors.append(f"extensions.conf:{line}: Dial to {target!r}: only PJSIP endpoints")
                    elif endpoints is not None and "$" not in resource and resource.split("/")[0] not in endpoints:
                        errors.append(f"extensions.conf:{line}: Dial to unknown endpoint {resource!r}")
    return contexts


def _check_modules(sections: list[Section], errors: list[str]) -> None:
    for sec in sections:
        for key, value, line in sec.options:
            module = value.removesuffix(".so")
            if key in ("load", "preload", "require", "preload-require") and module in FORBIDDEN:
                errors.append(f"modules.conf:{line}: forbidden module {value} is loaded")
            if key == "autoload" and value.lower() not in ("no", "false", "0"):
                errors.append(f"modules.conf:{line}: autoload must be no")


def _check_queues(sections: list[Section], contexts: set[str] | None, endpoints: set[str] | None,
                  errors: list[str]) -> None:
    """The waiting line: nothing that records, and members only the governor's desk through our member context."""
    for sec in sections:
        for key, value, line in sec.options:
            if key.startswith("monitor") or key in ("membermacro", "membergosub"):
                errors.append(f"queues.conf:{line}: [{sec.name}] {key}: the waiting line never records calls "
                              "or runs member dialplan")
            if key == "member":
                fields = [f.strip() for f in value.split(",")]
                match = re.fullmatch(r"Local/([A-Za-z0-9_.-]+)@([A-Za-z0-9_-]+)/n", fields[0])
                state = fields[3] if len(fields) > 3 else ""
                if (not match or match.group(2) != render.MEMBER_CONTEXT
                        or (contexts is not None and match.group(2) not in contexts)
                        or (endpoints is not None and match.group(1) not in endpoints)
                        or state != f"PJSIP/{match.group(1)}"):
                    errors.append(f"queues.conf:{line}: member {value!r}: must be Local/<desk>@{render.MEMBER_CONTEXT}/n "
                                  "with the desk's own PJSIP state interface")


def _check_musiconhold(sections: list[Section], errors: list[str]) -> None:
    for sec in sections:
        if sec.name == "general":
            continue
        opts = {k: v for k, v, _ in sec.options}
        if opts.get("mode") != "files" or "application" in opts or not opts.get("directory", "").startswith("/"):
            errors.append(f"musiconhold.conf: [{sec.name}]: mode must be files, from an absolute directory "
                          "(no application, no stream)")


def _check_manager(sections: list[Section], errors: list[str]) -> None:
    for sec in sections:
        opts = {k: v for k, v, _ in sec.options}
        if sec.name == "general" and opts.get("bindaddr", "0.0.0.0") not in ("127.0.0.1", "::1"):
            errors.append("manager.conf: AMI must bind to loopback")
        if sec.name != "general":
            writes = {p.strip() for p in opts.get("write", "").split(",")}
            if {"command", "all", "config"} & writes:
                errors.append(f"manager.conf: AMI user {sec.name} may write command/config/all")
            if "system" in writes and not sec.name.endswith("-provision"):
                errors.append(f"manager.conf: AMI user {sec.name} may write system (ModuleLoad): "
                              "only the provision user may")


def _message_dir(sections: list[Section]) -> str | None:
    """<instance_dir>/spool/messages, from asterisk.conf's astspooldir."""
    for sec in sections:
        for key, value, _line in sec.options:
            if key == "astspooldir":
                return value.rstrip("/") + "/" + render.MESSAGE_FOLDER.split("/", 1)[1]
    return None


def validate(files: dict[str, str], load_test: bool = False) -> list[str]:
    """Problems in a set of rendered files (filename -> text); empty when they may be written.
    `load_test` (settings.load_test) admits the benchmark's gated `load` endpoint, and nothing else."""
    errors: list[str] = []
    parsed = {}
    for name, text in sorted(files.items()):
        parsed[name] = parse(name, text, errors)
        _check_common(name, parsed[name], errors)
    for name, sections in parsed.items():
        if name not in ("pjsip.conf", "extensions.conf"):
            seen = set()
            for sec in sections:
                if not sec.is_template and sec.name in seen:
                    errors.append(f"{name}:{sec.line}: duplicate section [{sec.name}]")
                seen.add(sec.name)
    contexts = endpoints = None
    if "extensions.conf" in parsed:
        contexts = {s.name for s in parsed["extensions.conf"]}
    if "pjsip.conf" in parsed:
        endpoints = _check_pjsip(parsed["pjsip.conf"], contexts, errors, load_test)
    if "extensions.conf" in parsed:
        message_dir = _message_dir(parsed["asterisk.conf"]) if "asterisk.conf" in parsed else None
        _check_extensions(parsed["extensions.conf"], endpoints, errors, message_dir)
    if "queues.conf" in parsed:
        _check_queues(parsed["queues.conf"], contexts, endpoints, errors)
    if "musiconhold.conf" in parsed:
        _check_musiconhold(parsed["musiconhold.conf"], errors)
    if "modules.conf" in parsed:
        _check_modules(parsed["modules.conf"], errors)
    if "manager.conf" in parsed:
        _check_manager(parsed["manager.conf"], errors)
    return errors
