"""What every router reads from the app (the one case service and retrieval index it was built with) and the
parameters they share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request
from soctriage.service.cases import Cases
from soctriage.service.intake import IntakeFormat
from soctriage.tools.retrieval import LazyIndex

FormatQuery = Annotated[IntakeFormat, Query(alias="format", description="vendor format; auto detects it")]


def cases_of(request: Request) -> Cases:
    return request.app.state.cases


def retrieval_of(request: Request) -> LazyIndex:
    return request.app.state.retrieval
