"""The case queue as queries: one tenant's cases newest first, filtered and searched, in cursor pages, with
counts per status and a stamp that changes when what the queue shows does.

A cursor names the last case of a page by (created_at, id), the queue's sort key, so a page never repeats or
skips a case while new ones arrive at the top. Title, host, user, severity and disposition are columns of
the case (filled from its alert and verdict), so no query here parses JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from soctriage.service.domain import Case, CaseStatus, Disposition, format_ts
from soctriage.service.store.schema import cases
from soctriage.service.store.store import Store
from sqlalchemy import Select, and_, func, or_, select

MAX_PAGE = 1000
MAX_SEARCH_CHARS = 200


class CursorError(ValueError):
    """A cursor that this queue did not hand out (or one cut short)."""


@dataclass(frozen=True)
class CaseFilter:
    """What the queue shows: every field unset means every case of the tenant."""

    status: CaseStatus | None = None
    disposition: Disposition | None = None
    severity: str | None = None  # a severity label, e.g. High
    text: str | None = None  # words in the title, host name or user name, or a case id


@dataclass(frozen=True)
class CaseRow:
    """One queue line: the case, plus what its alert says about it."""

    case: Case
    title: str
    hostname: str | None
    user: str | None
    severity: str = "Unknown"


@dataclass(frozen=True)
class CasePage:
    rows: list[CaseRow]
    next_cursor: str | None


def encode_cursor(case: Case) -> str:
    raw = json.dumps([format_ts(case.created_at), case.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, case_id = json.loads(raw)
        return datetime.fromisoformat(created), str(case_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise CursorError(f"cursor {cursor[:40]!r}: not a cursor from this queue") from exc


def _filtered(query: Select[Any], tenant: str, wanted: CaseFilter) -> Select[Any]:
    query = query.where(cases.c.tenant == tenant)
    if wanted.status is not None:
        query = query.where(cases.c.status == wanted.status)
    if wanted.disposition is not None:
        query = query.where(cases.c.disposition == wanted.disposition)
    if wanted.severity:
        query = query.where(func.lower(cases.c.severity) == wanted.severity.lower())
    text = (wanted.text or "").strip()[:MAX_SEARCH_CHARS]
    if text:
        query = query.where(
            or_(
                cases.c.id == text,
                *(
                    column.icontains(text, autoescape=True)
                    for column in (cases.c.title, cases.c.hostname, cases.c.user_name)
                ),
            )
        )
    return query


def page_cases(
    store: Store, tenant: str, wanted: CaseFilter, *, limit: int = 50, cursor: str | None = None
) -> CasePage:
    """One page of the tenant's cases, newest first, after `cursor` (a `next_cursor` of an earlier page)."""
    limit = max(1, min(limit, MAX_PAGE))
    query = _filtered(
        select(cases).order_by(cases.c.created_at.desc(), cases.c.id).limit(limit + 1), tenant, wanted
    )
    if cursor:
        created, case_id = decode_cursor(cursor)
        query = query.where(
            or_(cases.c.created_at < created, and_(cases.c.created_at == created, cases.c.id > case_id))
        )
    with store.engine.connect() as conn:
        found = conn.execute(query).all()[: limit + 1]
        alert_ids = Store._alert_ids(conn, [row.id for row in found[:limit]])
    rows = [
        CaseRow(
            case=Store._to_case(row, alert_ids[row.id]),
            title=row.title or "",
            hostname=row.hostname,
            user=row.user_name,
            severity=row.severity or "Unknown",
        )
        for row in found[:limit]
    ]
    more = len(found) > limit
    return CasePage(rows=rows, next_cursor=encode_cursor(rows[-1].case) if more and rows else None)


def count_cases(store: Store, tenant: str, wanted: CaseFilter) -> int:
    query = _filtered(select(func.count()).select_from(cases), tenant, wanted)
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def status_counts(store: Store, tenant: str) -> dict[str, int]:
    """How many of the tenant's cases are in each status (statuses with none are left out)."""
    query = select(cases.c.status, func.count()).where(cases.c.tenant == tenant).group_by(cases.c.status)
    with store.engine.connect() as conn:
        return {status: int(n) for status, n in conn.execute(query)}


def queue_stamp(store: Store, tenant: str, counts: dict[str, int] | None = None) -> str:
    """Changes when a case of the tenant is opened or changes status (a verdict always comes with one): what
    the queue shows. Both parts are read from indexes, so polling it stays cheap with many cases."""
    newest = select(func.max(cases.c.created_at)).where(cases.c.tenant == tenant)
    with store.engine.connect() as conn:
        latest = conn.execute(newest).scalar()
    counts = status_counts(store, tenant) if counts is None else counts
    return f"{latest}|" + ",".join(f"{status}={n}" for status, n in sorted(counts.items()))
