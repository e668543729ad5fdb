"""`POST /v1/embeddings`, OpenAI-compatible, from the server's own retrieval embedder: the `soctriage worker`
processes of a host embed through it (SOCTRIAGE_EMBEDDER=host) instead of each loading the model.

Operator keys only: a worker is a service component above the tenants, and the route reveals nothing of any
tenant, so what a tenant key could do with it is spend the server's CPU. The size limits bound one request.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field
from soctriage.service.api.deps import retrieval_of
from soctriage.service.api.security import Operator
from soctriage.tools.retrieval_embed import EMBEDDINGS_MAX_CHARS, EMBEDDINGS_MAX_INPUTS

router = APIRouter(tags=["embeddings"])


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    input: str | list[str] = Field(description="a text or a list of texts")
    model: str | None = Field(
        default=None, description="the server's embedder (its name is each answer's `model`); unset means it"
    )
    encoding_format: Literal["float", "base64"] = Field(
        default="float", description="float: lists of numbers; base64: little-endian float32 bytes"
    )


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int = Field(description="characters embedded (the server does not count tokens)")
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str = Field(description="the embedder's name, which also names its Chroma collections")
    usage: Usage


@router.post("/v1/embeddings", response_model=EmbeddingsResponse)
async def embeddings(request: Request, _: Operator, body: EmbeddingsRequest) -> EmbeddingsResponse:
    """Embed texts with the server's retrieval embedder; L2-normalised rows, in input order."""
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts:
        raise HTTPException(422, "input: empty list; send a text or a list of texts")
    if len(texts) > EMBEDDINGS_MAX_INPUTS:
        raise HTTPException(413, f"input: {len(texts)} texts, limit is {EMBEDDINGS_MAX_INPUTS} per request")
    chars = sum(len(t) for t in texts)
    if chars > EMBEDDINGS_MAX_CHARS:
        raise HTTPException(
            413, f"input: {chars} characters in all, limit is {EMBEDDINGS_MAX_CHARS} per request"
        )
    # Loaded on a thread: the first request of a process may load the index and its model.
    embedder = (await asyncio.to_thread(retrieval_of(request).get)).embedder
    if body.model not in (None, embedder.name):
        raise HTTPException(422, f"model: this server embeds with {embedder.name}, not {body.model}")
    rows = await asyncio.to_thread(embedder.embed_documents, texts)
    return EmbeddingsResponse(
        data=[
            Embedding(index=i, embedding=_encoded(row, body.encoding_format)) for i, row in enumerate(rows)
        ],
        model=embedder.name,
        usage=Usage(prompt_tokens=chars, total_tokens=chars),
    )


def _encoded(row: np.ndarray, encoding: Literal["float", "base64"]) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(np.asarray(row, dtype="<f4").tobytes()).decode()
    return row.tolist()
