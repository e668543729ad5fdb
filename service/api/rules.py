"""Suppression rules over HTTP: `GET /v1/rules`, `GET /v1/rules/{id}`, `POST /v1/rules/{id}/revoke`. Rules are
made by feedback (`POST /v1/cases/{id}/feedback`); a rule of another tenant is reported like a missing one."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from soctriage.agents.feedback import FeedbackError, UnknownRule, revoke_rule
from soctriage.service.api.deps import cases_of
from soctriage.service.api.security import Analyst, Viewer
from soctriage.service.cases import NotFoundError
from soctriage.tools.suppression import RuleBook, SuppressionRule

router = APIRouter(tags=["rules"])

RuleId = Annotated[str, Path(max_length=32, description="rule id, e.g. rule-0123456789")]


class RevokeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=4000, description="why the rule no longer holds")


@router.get("/v1/rules", response_model=list[SuppressionRule])
async def list_rules(
    request: Request,
    who: Viewer,
    revoked: Annotated[bool, Query(description="also list revoked rules")] = False,
) -> list[SuppressionRule]:
    """The caller's tenant's suppression rules (active and candidates), newest first."""
    book = RuleBook(cases_of(request).store.engine)
    return await asyncio.to_thread(book.list, who.tenant, revoked=revoked)


@router.get("/v1/rules/{rule_id}", response_model=SuppressionRule)
async def get_rule(request: Request, who: Viewer, rule_id: RuleId) -> SuppressionRule:
    found = await asyncio.to_thread(RuleBook(cases_of(request).store.engine).get, rule_id)
    if found is None or found.tenant != who.tenant:
        raise NotFoundError(f"rule {rule_id} does not exist")
    return found


@router.post("/v1/rules/{rule_id}/revoke", response_model=SuppressionRule)
async def revoke(request: Request, who: Analyst, rule_id: RuleId, body: RevokeRequest) -> SuppressionRule:
    """Revoke a rule; the ledger of every case it was taught on records who and why."""
    try:
        return await asyncio.to_thread(
            revoke_rule, cases_of(request).store, rule_id, by=who.name, reason=body.reason, tenant=who.tenant
        )
    except UnknownRule as exc:
        raise NotFoundError(str(exc)) from exc
    except FeedbackError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
