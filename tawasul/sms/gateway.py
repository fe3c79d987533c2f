"""One SMS to an HTTP gateway: the request a preset (or IT's own template) makes, and what the answer
means: sent, retry later, or failed for good.

Presets (setting `sms_request`), for the common Saudi gateways; `sms_gateway_url` is always IT's:
- `unifonic-form`, `unifonic-json`: AppSid in the body, CorrelationID = the message's key;
  secret `app_sid`.
- `taqnyat`: `Authorization: Bearer`, JSON {recipients, sender, body}; secret `token`. Taqnyat takes
  no key: a retry after a sender died mid-request may send twice.
- `msegat`: JSON {userName, apiKey, numbers, userSender, msg}; secrets `user_name`, `api_key`.
  Msegat takes no key either, but refuses the same text to the same number (code 1061), which
  counts as sent.
- `custom`: `sms_body_template` (Jinja2) posted as `sms_content_type`, with `sms_headers` ("Name:
  value" lines, Jinja2) and an `Idempotency-Key` header; any 2xx is sent, 409 (the key was
  already used) too.
Templates see `to` (digits, no +), `body`, `sender`, `key`, `language` and `secret` (the secrets
file's values). The secrets file, `<state_dir>/secrets/sms-gateway`, is TOML, mode 0600.

Any preset: a timeout, a refused connection, 5xx, 408 and 429 are retried; 401/403 (credentials)
and other 4xx (a bad number, a bad request) fail at once.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field

import httpx
import jinja2

from tawasul.settings import Settings, SettingsError

SECRET_FILE = "sms-gateway"
SENT, RETRY, FAILED = "sent", "retry", "failed"


@dataclass(frozen=True)
class Message:
    to: str       # E.164, +9665...
    body: str
    key: str      # idempotency key
    language: str = "ar"


@dataclass(frozen=True)
class Outcome:
    result: str            # SENT, RETRY or FAILED
    reason: str = ""
    provider_id: str = ""


@dataclass(frozen=True)
class Request:
    headers: dict[str, str] = field(default_factory=dict)
    data: dict | None = None      # a form
    json: dict | None = None
    content: str | None = None    # custom: the rendered body as is


def _digits(to: str) -> str:
    return to.lstrip("+")


# --- presets: the request ----------------------------------------------------------------------

def _unifonic(m: Message, sender: str, secret: dict) -> dict:
    return {"AppSid": secret["app_sid"], "SenderID": sender, "Recipient": _digits(m.to), "Body": m.body,
            "CorrelationID": m.key, "MessageType": "3", "async": "false"}  # 3: a service message


def _taqnyat(m: Message, sender: str, secret: dict) -> Request:
    return Request(headers={"Authorization": f"Bearer {secret['token']}"},
                   json={"recipients": [_digits(m.to)], "sender": sender, "body": m.body})


def _msegat(m: Message, sender: str, secret: dict) -> Request:
    return Request(json={"userName": secret["user_name"], "apiKey": secret["api_key"], "numbers": _digits(m.to),
                         "userSender": sender, "msg": m.body, "msgEncoding": "UTF8"})


# --- presets: the answer -----------------------------------------------------------------------

# Unifonic: ER-01 no funds (retried: someone tops up), ER-09 the same text to the same number (sent).
UNIFONIC_RETRY = {"ER-01"}
UNIFONIC_SENT = {"ER-00", "ER-09"}
# Msegat: 1 / M0000 sent, 1061 duplicate (sent), 1060 no balance (retried); any other code fails.
MSEGAT_SENT = {"1", "M0000", "1061"}
MSEGAT_RETRY = {"1060"}


def _json(response: httpx.Response) -> dict:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _unifonic_outcome(response: httpx.Response) -> Outcome:
    answer = _json(response)
    code = str(answer.get("errorCode") or answer.get("ErrorCode") or "")
    data = answer.get("data") if isinstance(answer.get("data"), dict) else {}
    provider_id = str(data.get("MessageID", ""))
    if answer.get("success") in (True, "true") or code in UNIFONIC_SENT:
        return Outcome(SENT, code, provider_id)
    reason = f"{code} {answer.get('message', '')}".strip() or f"HTTP {response.status_code}"
    return Outcome(RETRY if code in UNIFONIC_RETRY else FAILED, reason)


def _taqnyat_outcome(response: httpx.Response) -> Outcome:
    answer = _json(response)
    return Outcome(SENT, "", str(answer.get("messageId", "")))


def _msegat_outcome(response: httpx.Response) -> Outcome:
    answer = _json(response)
    code = str(answer.get("code", ""))
    reason = f"{code} {answer.get('message', '')}".strip()
    if code in MSEGAT_SENT:
        return Outcome(SENT, reason)
    return Outcome(RETRY if code in MSEGAT_RETRY else FAILED, reason or "no code in the answer")


def _custom_outcome(response: httpx.Response) -> Outcome:
    answer = _json(response)
    return Outcome(SENT, "", str(answer.get("id") or answer.get("messageId") or "")[:64])


PRESETS = {
    # name: (build a request, read a 2xx answer, the secrets it needs)
    "unifonic-form": (lambda m, s, x: Request(data=_unifonic(m, s, x)), _unifonic_outcome, ("app_sid",)),
    "unifonic-json": (lambda m, s, x: Request(json=_unifonic(m, s, x)), _unifonic_outcome, ("app_sid",)),
    "taqnyat": (_taqnyat, _taqnyat_outcome, ("token",)),
    "msegat": (_msegat, _msegat_outcome, ("user_name", "api_key")),
    "custom": (None, _custom_outcome, ()),
}


def http_outcome(response: httpx.Response, read_answer) -> Outcome:
    status = response.status_code
    if 200 <= status < 300:
        return read_answer(response)
    reason = f"HTTP {status} {response.reason_phrase}".strip()
    detail = " ".join(response.text.split())[:200] if response.text else ""
    if detail:
        reason = f"{reason}: {detail}"
    if status >= 500 or status in (408, 429):
        return Outcome(RETRY, reason)
    if status == 409:  # the key was used already: the gateway has this message
        return Outcome(SENT, reason)
    return Outcome(FAILED, reason)  # credentials (401, 403), a bad number or request (400, 404, 422, ...)


def read_secret(settings: Settings) -> dict:
    path = settings.secrets_dir / SECRET_FILE
    if not path.exists():
        return {}
    mode = path.stat().st_mode
    if mode & 0o077:
        raise SettingsError(f"{path}: readable by others (mode {mode & 0o777:o}); chmod 600 it")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: {exc}") from None


class Gateway:
    """Builds and posts the request for one message, and reads what the answer means."""

    def __init__(self, settings: Settings, secret: dict | None = None):
        if settings.sms_request not in PRESETS:
            raise SettingsError(f"sms_request: {settings.sms_request!r} is not one of {', '.join(PRESETS)}")
        if not settings.sms_gateway_url.startswith(("http://", "https://")):
            raise SettingsError(f"sms_gateway_url: expected an http:// or https:// address, "
                                f"got {settings.sms_gateway_url!r}")
        if settings.sms_timeout <= 0 or settings.sms_lease_seconds <= 2 * settings.sms_timeout + 1:
            raise SettingsError("sms_lease_seconds must be more than twice sms_timeout (plus a second), "
                                "so a message is never retried while its request may still be running")
        if settings.sms_max_attempts < 1:
            raise SettingsError("sms_max_attempts: expected 1 or more")
        self.url, self.sender = settings.sms_gateway_url, settings.sms_sender_id
        self.secret = read_secret(settings) if secret is None else secret
        self.build, self.read_answer, needed = PRESETS[settings.sms_request]
        missing = [name for name in needed if not self.secret.get(name)]
        if missing:
            raise SettingsError(f"{settings.secrets_dir / SECRET_FILE}: {settings.sms_request} needs "
                                f"{', '.join(missing)}")
        if self.build is None:
            environment = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
            try:
                self.body_template = environment.from_string(settings.sms_body_template)
                self.header_templates = [environment.from_string(line) for line in settings.sms_headers.splitlines()
                                         if line.strip()]
            except jinja2.TemplateSyntaxError as exc:
                raise SettingsError(f"sms_body_template or sms_headers: {exc}") from None
            self.content_type = settings.sms_content_type
            self.request(Message("+966500000000", "test", "k"))  # a template naming an unknown value fails now

    def request(self, message: Message) -> Request:
        if self.build is not None:
            return self.build(message, self.sender, self.secret)
        values = {"to": _digits(message.to), "body": message.body, "sender": self.sender, "key": message.key,
                  "language": message.language, "secret": self.secret}
        try:
            headers = {"Content-Type": self.content_type, "Idempotency-Key": message.key}
            for template in self.header_templates:
                name, _, value = template.render(values).partition(":")
                headers[name.strip()] = value.strip()
            return Request(headers=headers, content=self.body_template.render(values))
        except jinja2.UndefinedError as exc:
            given = ", ".join(sorted(self.secret)) or "nothing"
            raise SettingsError(f"sms_body_template or sms_headers: {exc} (the secrets file {SECRET_FILE} "
                                f"gives {given})") from None

    def send(self, client: httpx.Client, message: Message) -> Outcome:
        request = self.request(message)
        try:
            response = client.post(self.url, headers=request.headers, data=request.data, json=request.json,
                                   content=request.content.encode("utf-8") if request.content is not None else None)
        except httpx.TimeoutException:
            return Outcome(RETRY, "the gateway did not answer in time")
        except httpx.TransportError as exc:
            return Outcome(RETRY, f"the gateway cannot be reached: {type(exc).__name__} {exc}"[:300])
        return http_outcome(response, self.read_answer)


def client(settings: Settings) -> httpx.Client:
    return httpx.Client(timeout=httpx.Timeout(settings.sms_timeout), follow_redirects=False,
                        headers={"User-Agent": "tawasul-sms"}, trust_env=False)


def describe(settings: Settings) -> str:
    return f"{settings.sms_request} at {settings.sms_gateway_url}"

