"""The audit log: who changed what, when. Identifiers only; no personal data in `detail`."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tawasul.models import AuditEntry

# A plain insert: an entry is never read back in the transaction that writes it, and an ORM object
# would cost a unit-of-work flush of its own (a booking writes two entries).
_INSERT = sa.insert(AuditEntry.__table__)


def record(session: Session, actor: str, action: str, entity=None, **detail) -> None:
    session.flush()  # so a new entity has its id
    session.execute(_INSERT, {
        "actor": actor, "action": action,
        "entity": type(entity).__tablename__ if entity is not None else "",
        "entity_id": str(getattr(entity, "id", "") or ""),
        "detail": detail,
    })
