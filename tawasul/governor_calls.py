"""Governor-initiated calls: "connect next" rings the governor's desk, then the centre of the next
due, checked-in appointment (AMI Originate). The decision is made here, from the booking, never
by the dialplan: the `tawasul-governor-call` context only carries it out."""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tawasul import audit
from tawasul.models import Appointment, AppointmentKind, AppointmentStatus, Device, DeviceKind
from tawasul.validation import InvalidInput, display_text

CONTEXT = "tawasul-governor-call"
RING_SECONDS = 30
_ENDPOINT = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


@dataclass(frozen=True)
class NextCall:
    appointment_id: int
    reference: str
    citizen_name: str
    centre_endpoint: str
    governor_endpoint: str
    slot_seconds: int


def _endpoint(device: Device | None, what: str) -> str:
    if device is None or not _ENDPOINT.match(device.sip_user):
        raise InvalidInput("device", f"no usable {what}")
    return device.sip_user


def next_call(session: Session, now: dt.datetime, early_minutes: int, late_minutes: int,
              governor_endpoint: str | None = None) -> NextCall:
    """The next due, checked-in video appointment and who to ring (`governor_endpoint`, else the
    governor's desk), or a clear refusal."""
    if session.scalar(sa.select(sa.func.count(Appointment.id)).where(
            Appointment.status == AppointmentStatus.IN_SESSION)):
        raise InvalidInput("governor", "the governor is in a session; end it first")
    appointment = session.scalars(sa.select(Appointment).where(
        Appointment.kind == AppointmentKind.VIDEO,
        Appointment.status.in_([AppointmentStatus.CHECKED_IN, AppointmentStatus.WAITING]),
        Appointment.slot_start <= now + dt.timedelta(minutes=early_minutes),
        Appointment.slot_start >= now - dt.timedelta(minutes=late_minutes),
    ).order_by(Appointment.slot_start, Appointment.id)).first()
    if appointment is None:
        raise InvalidInput("appointment", "no checked-in appointment is due now")
    phone = session.scalars(sa.select(Device).where(
        Device.centre_id == appointment.centre_id, Device.kind == DeviceKind.CENTRE_PHONE,
        Device.enabled).order_by(Device.id)).first()
    if governor_endpoint is None:
        desk = session.scalars(sa.select(Device).where(
            Device.kind == DeviceKind.GOVERNOR_DESK, Device.enabled).order_by(Device.id)).first()
        governor_endpoint = _endpoint(desk, "governor's desk endpoint")
    remaining = int((appointment.slot_end - now).total_seconds())
    return NextCall(appointment.id, appointment.reference, appointment.citizen.name,
                    _endpoint(phone, "video phone at the appointment's centre"),
                    governor_endpoint, max(60, remaining))


def originate_action(call: NextCall) -> dict:
    """The AMI Originate that rings the governor's desk, then (in the dialplan) the centre."""
    return {
        "Action": "Originate",
        "Channel": f"PJSIP/{call.governor_endpoint}",
        "Context": CONTEXT, "Exten": "s", "Priority": "1",
        # What the governor's phone shows: the citizen's name and booking reference, never the ID.
        "CallerID": f'"{display_text(f"{call.citizen_name} {call.reference}")}" <{display_text(call.reference)}>',
        "Timeout": str(RING_SECONDS * 1000),
        # Without it Asterisk offers the governor's endpoint audio only, and the centre no video.
        "Codecs": "opus,g722,ulaw,alaw,vp8,h264",
        "Async": "true",
        "Variable": [f"TAWASUL_APPOINTMENT={call.appointment_id}",
                     f"TAWASUL_CENTRE={call.centre_endpoint}",
                     f"TAWASUL_SLOT_SECONDS={call.slot_seconds}"],
    }


def record_request(session: Session, call: NextCall, actor: str) -> None:
    audit.record(session, actor, "call.connect_next", session.get(Appointment, call.appointment_id))
