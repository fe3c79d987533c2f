"""The audit log: who changed what, when. Identifiers only; no personal data in `detail`."""
from __future__ import annotations

from sqlalchemy.orm import Session

from tawasul.models import AuditEntry


def record(session: Session, actor: str, action: str, entity=None, **detail) -> AuditEntry:
    session.flush()  # so a new entity has its id
    entry = AuditEntry(
        actor=actor, action=action,
        entity=type(entity).__tablename__ if entity is not None else "",
        entity_id=str(getattr(entity, "id", "") or ""),
        detail=detail,
    )
    session.add(entry)
    return entry
