"""Audit trail writer, run as a background task after the response is sent.

It deliberately uses the module-level ``SessionLocal`` rather than the request
session: that session belongs to the request's dependency scope, which FastAPI
may already have torn down when background tasks run.
"""

from __future__ import annotations

from example_app.db import SessionLocal
from example_app.models import AuditEntry


async def write_audit(action: str, detail: str) -> None:
    """Persist one audit entry in its own transaction."""
    async with SessionLocal() as session:
        session.add(AuditEntry(action=action, detail=detail))
        await session.commit()
