"""The governor's desk registering from a new address: logged and kept for IT (the board shows it).

The desk's AOR keeps one contact and a new registration replaces the old one (max_contacts=1,
remove_existing=yes), so a leaked desk password would quietly move the governor's sessions to
whoever registers with it. settings.desk_networks limits where the desk may register from; within
those networks, the call watcher reports every change of the desk's address (AMI ContactStatus of
a live contact: Asterisk 22 reports a new one as NonQualified or Reachable): a WARNING log line
and an audit entry `desk.contact_changed` (the first address seen is kept as `desk.contact`).
The board lists the latest changes.
"""
from __future__ import annotations

import logging
import re

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tawasul import audit
from tawasul.models import AuditEntry, Device, DeviceKind

log = logging.getLogger("tawasul.desk")

ACTOR = "callwatch"
FIRST = "desk.contact"
CHANGED = "desk.contact_changed"
_HOST = re.compile(r"^sips?:(?:[^@;>]*@)?(\[[^\]]+\]|[^:;>]+)")


LIVE = ("Created", "Updated", "Reachable", "NonQualified")  # not Unreachable or Removed


def wanted(event) -> bool:
    return event.get("Event") == "ContactStatus" and event.get("ContactStatus") in LIVE


def address(uri: str) -> str:
    """sip:governor-desk-1@127.0.0.3:5110;transport=tls -> 127.0.0.3 (the port changes with every
    restart of a phone behind NAT, so only the host counts)."""
    match = _HOST.match(uri or "")
    return match.group(1).strip("[]") if match else ""


def last_address(session: Session, device: Device) -> str:
    detail = session.scalar(sa.select(AuditEntry.detail)
                            .where(AuditEntry.entity == Device.__tablename__, AuditEntry.entity_id == str(device.id),
                                   AuditEntry.action.in_((FIRST, CHANGED)))
                            .order_by(AuditEntry.id.desc()).limit(1))
    return (detail or {}).get("address", "")


def on_contact(session: Session, event) -> str | None:
    """Record a desk's new address; returns the address it had before when it changed, else None."""
    endpoint = event.get("EndpointName", "") or event.get("AOR", "")
    new = address(event.get("URI", ""))
    if not endpoint or not new:
        return None
    device = session.scalar(sa.select(Device).where(Device.sip_user == endpoint,
                                                    Device.kind == DeviceKind.GOVERNOR_DESK))
    if device is None:
        return None
    before = last_address(session, device)
    if before == new:
        return None
    if not before:
        audit.record(session, ACTOR, FIRST, device, sip_user=endpoint, address=new)
        return None
    log.warning("the governor's desk %s registered from a new address: %s (before: %s)", endpoint, new, before)
    audit.record(session, ACTOR, CHANGED, device, sip_user=endpoint, address=new, previous=before)
    return before


def latest_changes(session: Session, limit: int = 5) -> list[dict]:
    """The latest desk address changes, newest first: [{at, sip_user, address, previous}]."""
    entries = session.scalars(sa.select(AuditEntry).where(AuditEntry.action == CHANGED)
                              .order_by(AuditEntry.id.desc()).limit(limit)).all()
    return [{"at": e.at, "sip_user": e.detail.get("sip_user", ""), "address": e.detail.get("address", ""),
             "previous": e.detail.get("previous", "")} for e in entries]
