"""The domain's tables (SQLAlchemy 2). Times are UTC; the region's zone is applied in services."""
from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tawasul.db import Base, UTCDateTime


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _enum(cls):
    return sa.Enum(cls, native_enum=False, length=20, validate_strings=True,
                   values_callable=lambda e: [m.value for m in e])


class DeviceKind(str, enum.Enum):
    CENTRE_PHONE = "centre_phone"
    GOVERNOR_DESK = "governor_desk"
    STAFF = "staff"


class AppointmentKind(str, enum.Enum):
    VIDEO = "video"           # a video session from a reception centre
    IN_PERSON = "in_person"   # attendance at the governor's daily session at the emirate


class LocationChoice(str, enum.Enum):
    NEAREST_CENTRE = "nearest_centre"
    CENTRE_ON_DATE = "centre_on_date"  # where the citizen will be on that date


class AppointmentStatus(str, enum.Enum):
    BOOKED = "booked"
    CHECKED_IN = "checked_in"
    WAITING = "waiting"
    IN_SESSION = "in_session"
    COMPLETED = "completed"
    NO_SHOW = "no_show"
    FAILED = "failed"
    CANCELLED = "cancelled"


# Statuses that hold their slot: everything but a cancellation.
HOLDING_STATUSES = tuple(s.value for s in AppointmentStatus if s is not AppointmentStatus.CANCELLED)


class TicketKind(str, enum.Enum):
    COMPLAINT = "complaint"
    SUGGESTION = "suggestion"
    DIRECTIVE = "directive"   # the governor's directive on a session, followed up by a department


class TicketStatus(str, enum.Enum):
    RECEIVED = "received"
    UNDER_REVIEW = "under_review"
    REFERRED = "referred"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Role(str, enum.Enum):
    STAFF = "staff"
    GOVERNOR_OFFICE = "governor_office"
    IT_ADMIN = "it_admin"


class Region(Base):
    __tablename__ = "region"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(20), unique=True)
    name_ar: Mapped[str] = mapped_column(sa.String(120))
    name_en: Mapped[str] = mapped_column(sa.String(120))
    governorates: Mapped[list[Governorate]] = relationship(back_populates="region")


class Governorate(Base):
    __tablename__ = "governorate"
    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(sa.ForeignKey("region.id"))
    code: Mapped[str] = mapped_column(sa.String(20), unique=True)
    name_ar: Mapped[str] = mapped_column(sa.String(120))
    name_en: Mapped[str] = mapped_column(sa.String(120))
    latitude: Mapped[float | None]
    longitude: Mapped[float | None]
    coordinates_approximate: Mapped[bool] = mapped_column(default=True)
    region: Mapped[Region] = relationship(back_populates="governorates")
    centres: Mapped[list[Centre]] = relationship(back_populates="governorate")


class Centre(Base):
    """A reception centre in a governorate building, with its SIP video phones."""

    __tablename__ = "centre"
    id: Mapped[int] = mapped_column(primary_key=True)
    governorate_id: Mapped[int] = mapped_column(sa.ForeignKey("governorate.id"))
    code: Mapped[str] = mapped_column(sa.String(20), unique=True)
    name_ar: Mapped[str] = mapped_column(sa.String(120))
    name_en: Mapped[str] = mapped_column(sa.String(120))
    address: Mapped[str] = mapped_column(sa.String(300), default="")
    latitude: Mapped[float | None]
    longitude: Mapped[float | None]
    # Networks the centre's phones may register from, comma-separated CIDRs.
    allowed_networks: Mapped[str] = mapped_column(sa.String(500), default="127.0.0.0/8")
    prompt_language: Mapped[str] = mapped_column(sa.String(8), default="ar")  # first language of prompts
    require_code: Mapped[bool] = mapped_column(default=False)
    active: Mapped[bool] = mapped_column(default=True)
    governorate: Mapped[Governorate] = relationship(back_populates="centres")
    devices: Mapped[list[Device]] = relationship(back_populates="centre")

    @property
    def networks(self) -> list[str]:
        return [n.strip() for n in self.allowed_networks.split(",") if n.strip()]


class Device(Base):
    __tablename__ = "device"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[DeviceKind] = mapped_column(_enum(DeviceKind))
    centre_id: Mapped[int | None] = mapped_column(sa.ForeignKey("centre.id"))
    label: Mapped[str] = mapped_column(sa.String(120), default="")
    vendor: Mapped[str] = mapped_column(sa.String(40), default="baresip")
    model: Mapped[str] = mapped_column(sa.String(40), default="")
    mac: Mapped[str | None] = mapped_column(sa.String(17), unique=True)
    sip_user: Mapped[str] = mapped_column(sa.String(40), unique=True)
    secret_encrypted: Mapped[str] = mapped_column(sa.String(300))  # Fernet token, see tawasul.secrets
    enabled: Mapped[bool] = mapped_column(default=True)
    token_version: Mapped[int] = mapped_column(default=1, server_default="1")  # part of its provisioning token
    centre: Mapped[Centre | None] = relationship(back_populates="devices")


class GovernorSchedule(Base):
    """When the governor takes sessions. Times are local to `timezone`."""

    __tablename__ = "governor_schedule"
    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(sa.ForeignKey("region.id"), unique=True)
    timezone: Mapped[str] = mapped_column(sa.String(40), default="Asia/Riyadh")
    # Python weekday numbers (Monday=0 ... Sunday=6), comma-separated. Sunday to Thursday: 6,0,1,2,3
    session_days: Mapped[str] = mapped_column(sa.String(20), default="6,0,1,2,3")
    video_start: Mapped[dt.time] = mapped_column(default=dt.time(9, 0))
    video_end: Mapped[dt.time] = mapped_column(default=dt.time(12, 0))
    slot_minutes: Mapped[int] = mapped_column(default=15)
    buffer_minutes: Mapped[int] = mapped_column(default=5)
    in_person_start: Mapped[dt.time] = mapped_column(default=dt.time(13, 0))
    in_person_capacity: Mapped[int] = mapped_column(default=30)
    region: Mapped[Region] = relationship()
    holidays: Mapped[list[Holiday]] = relationship(back_populates="schedule", cascade="all, delete-orphan")

    @property
    def weekdays(self) -> set[int]:
        return session_weekdays(self.session_days)


def session_weekdays(session_days: str) -> set[int]:
    """GovernorSchedule.session_days ("6,0,1,2,3") as Python weekday numbers."""
    return {int(d) for d in session_days.split(",") if d.strip()}


class Holiday(Base):
    __tablename__ = "holiday"
    __table_args__ = (sa.UniqueConstraint("schedule_id", "day"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(sa.ForeignKey("governor_schedule.id"))
    day: Mapped[dt.date]
    name: Mapped[str] = mapped_column(sa.String(120), default="")
    schedule: Mapped[GovernorSchedule] = relationship(back_populates="holidays")


class Citizen(Base):
    __tablename__ = "citizen"
    id: Mapped[int] = mapped_column(primary_key=True)
    national_id: Mapped[str] = mapped_column(sa.String(10), unique=True)  # national ID or iqama
    name: Mapped[str] = mapped_column(sa.String(200))
    mobile: Mapped[str] = mapped_column(sa.String(20))  # E.164
    home_governorate_id: Mapped[int | None] = mapped_column(sa.ForeignKey("governorate.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Appointment(Base):
    """A booked meeting. The partial unique index is what makes double booking impossible:
    one holding appointment per (kind, slot, seat). Video sessions always take seat 1."""

    __tablename__ = "appointment"
    __table_args__ = (
        sa.Index(
            "uq_appointment_slot_seat", "kind", "slot_start", "seat", unique=True,
            sqlite_where=sa.text("status != 'cancelled'"),
            postgresql_where=sa.text("status != 'cancelled'"),
        ),
        sa.Index("ix_appointment_slot", "slot_start"),
        # Whether the governor is in a session, asked for every call routed (agi/route_call.py).
        sa.Index("ix_appointment_status", "status"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(sa.String(20), unique=True)
    checkin_code: Mapped[str] = mapped_column(sa.String(8))
    citizen_id: Mapped[int] = mapped_column(sa.ForeignKey("citizen.id"))
    kind: Mapped[AppointmentKind] = mapped_column(_enum(AppointmentKind))
    slot_start: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    slot_minutes: Mapped[int]
    seat: Mapped[int] = mapped_column(default=1)
    centre_id: Mapped[int | None] = mapped_column(sa.ForeignKey("centre.id"))
    location_choice: Mapped[LocationChoice | None] = mapped_column(_enum(LocationChoice))
    subject: Mapped[str] = mapped_column(sa.String(500), default="")
    status: Mapped[AppointmentStatus] = mapped_column(_enum(AppointmentStatus), default=AppointmentStatus.BOOKED)
    cancel_reason: Mapped[str] = mapped_column(sa.String(300), default="")
    checked_in_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Wrong check-in codes keyed on calls, in all; at booking.WRONG_CODE_LIMIT no call gets through until
    # the desk checks the citizen in.
    code_failures: Mapped[int] = mapped_column(default=0, server_default="0")
    citizen: Mapped[Citizen] = relationship()
    centre: Mapped[Centre | None] = relationship()

    @property
    def slot_end(self) -> dt.datetime:
        return self.slot_start + dt.timedelta(minutes=self.slot_minutes)


class Call(Base):
    __tablename__ = "call"
    id: Mapped[int] = mapped_column(primary_key=True)
    uniqueid: Mapped[str] = mapped_column(sa.String(64), unique=True)  # Asterisk's linkedid
    appointment_id: Mapped[int | None] = mapped_column(sa.ForeignKey("appointment.id"), index=True)
    centre_id: Mapped[int | None] = mapped_column(sa.ForeignKey("centre.id"))
    channel: Mapped[str] = mapped_column(sa.String(120), default="")
    peer_channel: Mapped[str] = mapped_column(sa.String(120), default="")
    decision: Mapped[str] = mapped_column(sa.String(20), default="")
    reason: Mapped[str] = mapped_column(sa.String(40), default="")
    ring_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    answer_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    end_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(sa.String(20), default="")
    hangup_by: Mapped[str] = mapped_column(sa.String(20), default="")
    appointment: Mapped[Appointment | None] = relationship()


class Department(Base):
    __tablename__ = "department"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(20), unique=True)
    name_ar: Mapped[str] = mapped_column(sa.String(120))
    name_en: Mapped[str] = mapped_column(sa.String(120))


class Ticket(Base):
    __tablename__ = "ticket"
    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(sa.String(20), unique=True)
    kind: Mapped[TicketKind] = mapped_column(_enum(TicketKind))
    status: Mapped[TicketStatus] = mapped_column(_enum(TicketStatus), default=TicketStatus.RECEIVED)
    subject: Mapped[str] = mapped_column(sa.String(300))
    body: Mapped[str] = mapped_column(sa.Text, default="")
    category: Mapped[str] = mapped_column(sa.String(60), default="")
    citizen_id: Mapped[int | None] = mapped_column(sa.ForeignKey("citizen.id"))
    appointment_id: Mapped[int | None] = mapped_column(sa.ForeignKey("appointment.id"), index=True)
    department_id: Mapped[int | None] = mapped_column(sa.ForeignKey("department.id"))
    due_date: Mapped[dt.date | None]
    # What a citizen filing without an account gave so they can track it (both optional).
    contact_national_id: Mapped[str | None] = mapped_column(sa.String(10))
    contact_mobile: Mapped[str | None] = mapped_column(sa.String(20))  # E.164
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    citizen: Mapped[Citizen | None] = relationship()
    department: Mapped[Department | None] = relationship()
    history: Mapped[list[TicketEvent]] = relationship(
        back_populates="ticket", order_by="TicketEvent.id", cascade="all, delete-orphan")
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="ticket", order_by="Attachment.id", cascade="all, delete-orphan")


class TicketEvent(Base):
    __tablename__ = "ticket_event"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(sa.ForeignKey("ticket.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    from_status: Mapped[str] = mapped_column(sa.String(20), default="")
    to_status: Mapped[str] = mapped_column(sa.String(20))
    note: Mapped[str] = mapped_column(sa.String(1000), default="")
    actor: Mapped[str] = mapped_column(sa.String(60), default="")
    ticket: Mapped[Ticket] = relationship(back_populates="history")


class Attachment(Base):
    """A file sent with a ticket, kept under `<state_dir>/attachments/<stored_name>` (a random name)."""

    __tablename__ = "attachment"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(sa.ForeignKey("ticket.id"), index=True)
    stored_name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    original_name: Mapped[str] = mapped_column(sa.String(200))
    content_type: Mapped[str] = mapped_column(sa.String(40))
    size: Mapped[int]
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ticket: Mapped[Ticket] = relationship(back_populates="attachments")


class User(Base):
    __tablename__ = "user_account"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(60), unique=True)
    full_name: Mapped[str] = mapped_column(sa.String(200), default="")
    password_hash: Mapped[str] = mapped_column(sa.String(300))
    role: Mapped[Role] = mapped_column(_enum(Role))
    active: Mapped[bool] = mapped_column(default=True)
    # Set when IT hands over a generated password: the user must choose their own before anything else.
    must_change_password: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # Kept in each signed-in session and compared on every request: bumping it ends every session.
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Failed sign-ins from elsewhere do not slow this account down from where it last signed in.
    last_login_address: Mapped[str | None] = mapped_column(sa.String(45))


class LoginFailure(Base):
    """A failed sign-in: the name typed (an account or not) and the client's address, kept for a week
    to slow down guessing (tawasul.users.throttle) and to show IT."""

    __tablename__ = "login_failure"
    __table_args__ = (sa.Index("ix_login_failure_username_at", "username", "at"),
                      sa.Index("ix_login_failure_address_at", "address", "at"))
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    username: Mapped[str] = mapped_column(sa.String(60))
    address: Mapped[str] = mapped_column(sa.String(45))


class AuditEntry(Base):
    """Who changed what, when. `detail` holds identifiers and field names, not personal data."""

    __tablename__ = "audit_log"
    # Public tracking reads an appointment's steps from here by (entity, entity_id).
    __table_args__ = (sa.Index("ix_audit_log_entity", "entity", "entity_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(sa.String(60))
    action: Mapped[str] = mapped_column(sa.String(60))
    entity: Mapped[str] = mapped_column(sa.String(40), default="")
    entity_id: Mapped[str] = mapped_column(sa.String(40), default="")
    detail: Mapped[dict] = mapped_column(sa.JSON, default=dict)


class OutboxMessage(Base):
    """An SMS to send; the sender (tawasul.sms.sender) claims it, sends it and marks it sent or failed."""

    __tablename__ = "outbox_message"
    __table_args__ = (sa.Index("ix_outbox_message_due", "status", "due_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    to: Mapped[str] = mapped_column(sa.String(20))  # E.164
    body: Mapped[str] = mapped_column(sa.Text)
    language: Mapped[str] = mapped_column(sa.String(8), default="ar")
    appointment_id: Mapped[int | None] = mapped_column(sa.ForeignKey("appointment.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    appointment: Mapped[Appointment | None] = relationship()
    # The idempotency key, sent to the gateway where it takes one; also what makes a reminder queued once.
    key: Mapped[str] = mapped_column(sa.String(64), unique=True)
    status: Mapped[str] = mapped_column(sa.String(10), default="queued")  # queued, sending, sent, failed
    attempts: Mapped[int] = mapped_column(default=0)
    # queued: not before this (a retry's backoff); sending: the claim's lease ends then.
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    claim: Mapped[str] = mapped_column(sa.String(32), default="")  # the sender holding it
    last_error: Mapped[str] = mapped_column(sa.String(300), default="")
    provider_id: Mapped[str] = mapped_column(sa.String(64), default="")  # the gateway's message id
    failed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class WaitlistStatus(str, enum.Enum):
    WAITING = "waiting"      # the day was full when the citizen asked
    OFFERED = "offered"      # a slot was freed and offered to them
    BOOKED = "booked"        # they took the offered slot
    CANCELLED = "cancelled"  # they gave up, or the offer lapsed


class WaitlistEntry(Base):
    """A citizen waiting for a freed slot on a full day (first come, first offered)."""

    __tablename__ = "waitlist_entry"
    __table_args__ = (sa.Index("ix_waitlist_day", "kind", "day", "status"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    citizen_id: Mapped[int] = mapped_column(sa.ForeignKey("citizen.id"))
    kind: Mapped[AppointmentKind] = mapped_column(_enum(AppointmentKind))
    day: Mapped[dt.date]  # local day
    centre_id: Mapped[int | None] = mapped_column(sa.ForeignKey("centre.id"))
    location_choice: Mapped[LocationChoice | None] = mapped_column(_enum(LocationChoice))
    language: Mapped[str] = mapped_column(sa.String(8), default="ar")  # of the citizen's messages
    status: Mapped[WaitlistStatus] = mapped_column(_enum(WaitlistStatus), default=WaitlistStatus.WAITING)
    offered_slot: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    offered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    appointment_id: Mapped[int | None] = mapped_column(sa.ForeignKey("appointment.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    citizen: Mapped[Citizen] = relationship()
    centre: Mapped[Centre | None] = relationship()


class ApiToken(Base):
    """A bearer token for an integration using the JSON API, acting with one role. Only the
    SHA-256 of the token is kept: the token itself is shown once, when it is created."""

    __tablename__ = "api_token"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(40))
    role: Mapped[Role] = mapped_column(_enum(Role))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)  # hex SHA-256
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked: Mapped[bool] = mapped_column(default=False)


class LiveState(Base):
    """What Asterisk reports right now (registrations, channels), kept by the call watcher as one
    compact JSON snapshot per key; `version` goes up with every change, so a reader (the governor's
    console stream) can tell a change with one cheap query. See tawasul.livestate."""

    __tablename__ = "live_state"
    key: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    version: Mapped[int] = mapped_column(default=0)
    data: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
