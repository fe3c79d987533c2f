"""Nearest reception centre by great-circle distance."""
from __future__ import annotations

import math

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tawasul.models import Centre

EARTH_RADIUS_KM = 6371.0


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def nearest_centres(session: Session, latitude: float, longitude: float,
                    limit: int = 5) -> list[tuple[Centre, float]]:
    """Active centres with coordinates, nearest first, each with its distance in km."""
    centres = session.scalars(sa.select(Centre).where(
        Centre.active, Centre.latitude.is_not(None), Centre.longitude.is_not(None)))
    ranked = sorted(
        ((c, distance_km(latitude, longitude, c.latitude, c.longitude)) for c in centres),
        key=lambda pair: pair[1])
    return ranked[:limit]
