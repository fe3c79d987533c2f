"""The OpenAPI 3.1 document of the JSON API (web/api.py), served at /api/v1/openapi.json.

The one source of truth for what integrators see: every operation, its request and response
schemas, its errors and the bearer scheme. tests/unit/test_api.py checks that it names every API
route and runs schemathesis against it.
"""
from __future__ import annotations

import copy
import functools

from tawasul import tickets
from tawasul.models import AppointmentKind, AppointmentStatus, LocationChoice, TicketKind, TicketStatus

VERSION = "1.0.0"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


STRING = {"type": "string"}
DATE = {"type": "string", "format": "date"}
DATE_TIME = {"type": "string", "format": "date-time"}
REFERENCE = {"type": "string", "maxLength": 40, "description": "e.g. A-7KD4-X9M2-QAZ1 (case and dashes are forgiven)",
             "examples": ["A-7KD4-X9M2-QAZ1"]}

SCHEMAS: dict[str, dict] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {
                    "field": {"type": ["string", "null"], "description": "the input at fault, if one is"},
                    "message": STRING,
                },
            },
            "errors": {
                "type": "array",
                "description": "every refused field, when several were (the first is also in `error`)",
                "items": {"type": "object", "required": ["field", "message"],
                          "properties": {"field": STRING, "message": STRING}},
            },
        },
    },
    "Slot": {
        "type": "object",
        "required": ["start", "end", "local_time", "seats_left"],
        "properties": {
            "start": {**DATE_TIME, "description": "UTC; send it back as `at` to book it"},
            "end": {"type": ["string", "null"], "format": "date-time",
                    "description": "null for the in-person session (it has no fixed end)"},
            "local_time": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
            "seats_left": {"type": "integer", "minimum": 1},
        },
    },
    "Slots": {
        "type": "object",
        "required": ["date", "kind", "timezone", "session_day", "full", "slots"],
        "properties": {
            "date": DATE,
            "kind": {"enum": [k.value for k in AppointmentKind]},
            "timezone": STRING,
            "session_day": {"type": "boolean", "description": "the governor holds sessions that day"},
            "full": {"type": "boolean", "description": "a session day with nothing left (see the waitlist)"},
            "slots": {"type": "array", "items": _ref("Slot")},
        },
    },
    "Centre": {
        "type": "object",
        "required": ["code", "name_ar", "name_en"],
        "properties": {"code": STRING, "name_ar": STRING, "name_en": STRING},
    },
    "BookingRequest": {
        "type": "object",
        "required": ["national_id", "name", "mobile", "kind", "at"],
        "examples": [{"national_id": "1000000008", "name": "فهد الحربي", "mobile": "0551234567",
                      "home_governorate": "BDR", "kind": "video", "at": "2030-01-06T09:20:00+03:00",
                      "subject": "طلب مقابلة", "language": "ar"}],
        "properties": {
            "national_id": {"type": "string", "maxLength": 20,
                            "description": "10 digits, national ID (1...) or iqama (2...), with its check digit",
                            "examples": ["1000000008"]},
            "name": {"type": "string", "maxLength": 300, "examples": ["فهد الحربي"]},
            "mobile": {"type": "string", "maxLength": 30, "examples": ["0551234567"]},
            "home_governorate": {"type": "string", "maxLength": 20,
                                 "description": "governorate code; the nearest centre is computed from it",
                                 "examples": ["BDR"]},
            "kind": {"enum": [k.value for k in AppointmentKind]},
            "at": {**DATE_TIME, "description": "the slot's start (video), or any time on the day (in person)"},
            "location_choice": {"enum": [c.value for c in LocationChoice],
                                "description": "video only: nearest_centre (default without `centre`) or "
                                               "centre_on_date (default with `centre`)"},
            "centre": {"type": "string", "maxLength": 20, "description": "centre code, with centre_on_date",
                       "examples": ["BDR"]},
            "subject": {"type": "string", "maxLength": 500},
            "language": {"enum": ["ar", "en"], "description": "of the citizen's SMS (default ar)"},
        },
    },
    "Appointment": {
        "type": "object",
        "required": ["reference", "checkin_code", "kind", "status", "slot_start", "slot_end", "local_start",
                     "seat", "centre", "location_choice", "subject", "citizen_name", "cancel_reason",
                     "checked_in_at", "created_at", "sms"],
        "properties": {
            "reference": STRING,
            "checkin_code": {"type": "string", "pattern": "^[0-9]{6}$"},
            "kind": {"enum": [k.value for k in AppointmentKind]},
            "status": {"enum": [s.value for s in AppointmentStatus]},
            "slot_start": DATE_TIME,
            "slot_end": DATE_TIME,
            "local_start": {**DATE_TIME, "description": "slot_start in the region's zone"},
            "seat": {"type": "integer", "minimum": 1},
            "centre": _nullable(_ref("Centre")),
            "location_choice": {"enum": [c.value for c in LocationChoice] + [None]},
            "subject": STRING,
            "citizen_name": STRING,
            "cancel_reason": STRING,
            "checked_in_at": {"type": ["string", "null"], "format": "date-time"},
            "created_at": DATE_TIME,
            "sms": {"type": ["string", "null"], "description": "the latest SMS queued for the citizen"},
        },
    },
    "CancelRequest": {
        "type": "object", "required": ["reason"],
        "properties": {"reason": {"type": "string", "maxLength": 300, "examples": ["the citizen asked"]}},
    },
    "RescheduleRequest": {
        "type": "object", "required": ["at"],
        "properties": {"at": {**DATE_TIME, "description": "the new slot's start",
                              "examples": ["2030-01-07T09:40:00+03:00"]}},
    },
    "TicketRequest": {
        "type": "object",
        "required": ["kind", "category", "subject", "body"],
        "examples": [{"kind": "complaint", "category": "roads", "subject": "حفرة في الطريق",
                      "body": "حفرة كبيرة أمام المدرسة", "mobile": "0551234567"}],
        "properties": {
            "kind": {"enum": [k.value for k in tickets.PUBLIC_KINDS]},
            "category": {"type": "string", "maxLength": 60, "enum": list(tickets.CATEGORIES)},
            "subject": {"type": "string", "maxLength": 2 * tickets.SUBJECT_MAX,
                        "description": f"{tickets.SUBJECT_MAX} characters at most once trimmed"},
            "body": {"type": "string", "maxLength": 2 * tickets.BODY_MAX,
                     "description": f"{tickets.BODY_MAX} characters at most once trimmed"},
            "national_id": {"type": "string", "maxLength": 20, "description": "optional: to track the request"},
            "mobile": {"type": "string", "maxLength": 30, "description": "optional: to track the request"},
            "department": {"type": "string", "maxLength": 20,
                           "description": "staff token only: route to this department (default: by category)"},
            "due_date": {**DATE, "description": "staff token only"},
        },
    },
    "TicketSummary": {
        "type": "object",
        "required": ["reference", "kind", "status", "category", "subject", "department", "due_date", "overdue",
                     "created_at", "updated_at"],
        "properties": {
            "reference": STRING,
            "kind": {"enum": [k.value for k in TicketKind]},
            "status": {"enum": [s.value for s in TicketStatus]},
            "category": STRING,
            "subject": STRING,
            "department": {"type": ["string", "null"], "description": "department code"},
            "due_date": {"type": ["string", "null"], "format": "date"},
            "overdue": {"type": "boolean"},
            "created_at": DATE_TIME,
            "updated_at": DATE_TIME,
        },
    },
    "Ticket": {
        "allOf": [_ref("TicketSummary"), {
            "type": "object",
            "required": ["body", "appointment", "history", "attachments"],
            "properties": {
                "body": STRING,
                "appointment": {"type": ["string", "null"], "description": "a directive's session"},
                "history": {"type": "array", "items": {
                    "type": "object", "required": ["at", "from_status", "to_status", "note", "actor"],
                    "properties": {"at": DATE_TIME, "from_status": {"type": ["string", "null"]},
                                   "to_status": STRING, "note": STRING, "actor": STRING}}},
                "attachments": {"type": "array", "items": {
                    "type": "object", "required": ["name", "content_type", "size"],
                    "properties": {"name": STRING, "content_type": STRING, "size": {"type": "integer"}}}},
            },
        }],
    },
    "TicketList": {
        "type": "object", "required": ["tickets"],
        "properties": {"tickets": {"type": "array", "items": _ref("TicketSummary")}},
    },
    "TicketUpdate": {
        "type": "object",
        "examples": [{"status": "under_review", "note": "seen by the department"}],
        "description": "at least one of the three",
        "properties": {
            "status": {"enum": [s.value for s in TicketStatus]},
            "department": {"type": "string", "maxLength": 20},
            "note": {"type": "string", "maxLength": 2000, "description": "internal; 1000 characters at most"},
        },
    },
    "TrackRequest": {
        "type": "object", "required": ["reference", "identity"],
        "examples": [{"reference": "A-7KD4-X9M2-QAZ1", "identity": "1000000008"}],
        "properties": {"reference": {"type": "string", "maxLength": 40},
                       "identity": {"type": "string", "maxLength": 40,
                                    "description": "the national ID or iqama number, or the mobile number"}},
    },
    "Tracked": {
        "type": "object",
        "required": ["reference", "kind", "status", "created_at", "steps", "slot_start", "centre", "follow_ups"],
        "properties": {
            "reference": STRING,
            "kind": {"enum": ["appointment"] + [k.value for k in TicketKind]},
            "status": STRING,
            "created_at": DATE_TIME,
            "steps": {"type": "array", "items": {"type": "object", "required": ["status", "at"],
                                                 "properties": {"status": STRING, "at": DATE_TIME}}},
            "slot_start": {"type": ["string", "null"], "format": "date-time"},
            "centre": {"anyOf": [{"type": "null"}, {"type": "object", "required": ["name_ar", "name_en"],
                                                    "properties": {"name_ar": STRING, "name_en": STRING}}]},
            "follow_ups": {"type": "array", "items": {"type": "object", "required": ["reference", "status"],
                                                      "properties": {"reference": STRING, "status": STRING}}},
        },
    },
}

ERRORS = {
    "400": "The request does not fit this document: not a JSON object, a missing field, a wrong type or format.",
    "401": "No bearer token, or an unknown or revoked one.",
    "403": "The token's role may not do this.",
    "404": "No such thing.",
    "409": "Refused by the state of things: the slot is taken, the appointment or request cannot change so.",
    "422": "Fits this document, but the rules refuse a value (check digit, not a session slot, in the past...).",
    "429": "Too many requests from this address; try again in a minute.",
}


def _errors(*codes: str) -> dict:
    return {code: {"$ref": f"#/components/responses/E{code}"} for code in codes}


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _ok(description: str, schema: str, code: str = "200") -> dict:
    return {code: {"description": description, "content": _json(_ref(schema))}}


def _body(schema: str) -> dict:
    return {"required": True, "content": _json(_ref(schema))}


TOKEN = [{"bearer": []}]
REFERENCE_PARAM = {"name": "reference", "in": "path", "required": True, "schema": REFERENCE,
                   "examples": {"appointment": {"value": "A-7KD4-X9M2-QAZ1"}}}
TICKET_REFERENCE_PARAM = {"name": "reference", "in": "path", "required": True, "schema": REFERENCE,
                          "examples": {"complaint": {"value": "C-7KD4-X9M2-QAZ1"}}}
STAFF = "Role: staff."
READERS = "Roles: staff, governor_office."


def _paths() -> dict:
    return {
        "/slots": {"get": {
            "operationId": "slots", "tags": ["booking"], "security": TOKEN,
            "summary": "Free slots of a day",
            "description": f"The video slots nobody holds, or the seats left at the governor's daily session "
                           f"in person. {READERS}",
            "parameters": [
                {"name": "date", "in": "query", "required": True, "schema": {**DATE, "examples": ["2030-01-06"]},
                 "description": "local date in the region's zone"},
                {"name": "kind", "in": "query", "required": False,
                 "schema": {"enum": [k.value for k in AppointmentKind], "default": "video"}},
            ],
            "responses": {**_ok("The day's free slots", "Slots"), **_errors("400", "401", "403", "422")},
        }},
        "/appointments": {"post": {
            "operationId": "book", "tags": ["booking"], "security": TOKEN,
            "summary": "Book a meeting",
            "description": "Finds the citizen by national ID (or registers them; name and mobile are refreshed), "
                           "chooses the centre (nearest to the home governorate, or the one given), books the slot "
                           f"and queues the SMS confirmation. {STAFF}",
            "requestBody": _body("BookingRequest"),
            "responses": {
                "201": {"description": "Booked", "content": _json(_ref("Appointment")),
                        "headers": {"Location": {"schema": STRING}}},
                **_errors("400", "401", "403", "409", "422")},
        }},
        "/appointments/{reference}": {"get": {
            "operationId": "appointment", "tags": ["booking"], "security": TOKEN,
            "summary": "An appointment", "description": READERS, "parameters": [REFERENCE_PARAM],
            "responses": {**_ok("The appointment", "Appointment"), **_errors("400", "401", "403", "404")},
        }},
        "/appointments/{reference}/cancel": {"post": {
            "operationId": "cancel", "tags": ["booking"], "security": TOKEN,
            "summary": "Cancel with a reason",
            "description": f"The freed slot is offered to the first citizen on that day's waitlist. {STAFF}",
            "parameters": [REFERENCE_PARAM], "requestBody": _body("CancelRequest"),
            "responses": {**_ok("Cancelled", "Appointment"), **_errors("400", "401", "403", "404", "409", "422")},
        }},
        "/appointments/{reference}/reschedule": {"post": {
            "operationId": "reschedule", "tags": ["booking"], "security": TOKEN,
            "summary": "Move to another slot",
            "description": f"Keeps the reference; the old slot is freed only once the new one is had. {STAFF}",
            "parameters": [REFERENCE_PARAM], "requestBody": _body("RescheduleRequest"),
            "responses": {**_ok("Moved", "Appointment"), **_errors("400", "401", "403", "404", "409", "422")},
        }},
        "/appointments/{reference}/check-in": {"post": {
            "operationId": "checkIn", "tags": ["booking"], "security": TOKEN,
            "summary": "Check in at the centre desk", "description": STAFF, "parameters": [REFERENCE_PARAM],
            "responses": {**_ok("Checked in", "Appointment"), **_errors("400", "401", "403", "404", "409")},
        }},
        "/tickets": {
            "post": {
                "operationId": "fileTicket", "tags": ["tickets"], "security": [{}, {"bearer": []}],
                "summary": "File a complaint or suggestion",
                "description": "Public: no token needed, rate limited per address (10 a minute). With a staff "
                               "token: not rate limited, and `department` and `due_date` may be set.",
                "requestBody": _body("TicketRequest"),
                "responses": {
                    "201": {"description": "Filed: keep the reference to track it",
                            "content": _json(_ref("TicketSummary"))},
                    **_errors("400", "401", "403", "422", "429")},
            },
            "get": {
                "operationId": "listTickets", "tags": ["tickets"], "security": TOKEN,
                "summary": "List requests", "description": f"Newest first. {READERS}",
                "parameters": [
                    {"name": "department", "in": "query", "schema": {"type": "string", "maxLength": 20}},
                    {"name": "status", "in": "query", "schema": {"enum": [s.value for s in TicketStatus]}},
                    {"name": "kind", "in": "query", "schema": {"enum": [k.value for k in TicketKind]}},
                    {"name": "open", "in": "query", "schema": {"enum": ["true", "false"], "default": "false"},
                     "description": "only requests not yet resolved or closed"},
                    {"name": "limit", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
                ],
                "responses": {**_ok("The requests", "TicketList"), **_errors("400", "401", "403", "422")},
            },
        },
        "/tickets/{reference}": {
            "get": {
                "operationId": "ticket", "tags": ["tickets"], "security": TOKEN,
                "summary": "A request with its history (internal notes included)", "description": READERS,
                "parameters": [TICKET_REFERENCE_PARAM],
                "responses": {**_ok("The request", "Ticket"), **_errors("400", "401", "403", "404")},
            },
            "patch": {
                "operationId": "updateTicket", "tags": ["tickets"], "security": TOKEN,
                "summary": "A department's update",
                "description": f"Route to another department, move the status, add a note. {STAFF}",
                "parameters": [TICKET_REFERENCE_PARAM], "requestBody": _body("TicketUpdate"),
                "responses": {**_ok("Updated", "Ticket"), **_errors("400", "401", "403", "404", "409", "422")},
            },
        },
        "/track": {"post": {
            "operationId": "track", "tags": ["tracking"], "security": [],
            "summary": "Track a booking or request",
            "description": "Public, rate limited per address (10 a minute). The status and dated steps only. "
                           "A wrong pair and an unknown reference get the very same 404.",
            "requestBody": _body("TrackRequest"),
            "responses": {**_ok("Found", "Tracked"), **_errors("400", "404", "429")},
        }},
        "/openapi.json": {"get": {
            "operationId": "openapi", "tags": ["meta"], "security": [], "summary": "This document",
            "responses": {"200": {"description": "OpenAPI 3.1", "content": _json({"type": "object"})}},
        }},
    }


@functools.cache
def _document() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tawasul API",
            "version": VERSION,
            "summary": "Booked meetings with the governor, complaints and suggestions, and their tracking.",
            "description": "JSON in and out. Send `Authorization: Bearer <token>`; a token is made by "
                           "`tawasul api-token create NAME --role staff|governor_office|it_admin` and acts with "
                           "that role. Errors are `{\"error\": {\"field\": ..., \"message\": ...}}`. Times are "
                           "RFC 3339 with their offset (answers are in UTC).",
        },
        "servers": [{"url": "/api/v1"}],
        "security": TOKEN,
        "paths": _paths(),
        "components": {
            "schemas": SCHEMAS,
            "responses": {f"E{code}": {"description": text, "content": _json(_ref("Error"))}
                          for code, text in ERRORS.items()},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "`tws_` and 43 URL-safe characters"}},
        },
    }


def document() -> dict:
    return copy.deepcopy(_document())
