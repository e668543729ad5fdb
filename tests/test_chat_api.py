"""The chat routes: SSE chat on a case, the OpenAI-compatible completions (driven by the official `openai`
client), feedback, roles and tenant isolation."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from soctriage.agents.run import Triager
from soctriage.service.api.app import create_app
from soctriage.service.auth import create_key
from soctriage.service.config import Settings
from soctriage.service.store import Store
from test_graph import sample

SUDO = "wazuh-admin-sudo-benign.json"
ADMIN_TOKEN = "chat-admin-token"


class Service:
    def __init__(self, client: httpx2.AsyncClient, keys: dict[str, str], case_id: str, app: Any) -> None:
        self.client, self.keys, self.case_id, self.app = client, keys, case_id, app

    def headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[key]}"}

    def openai(self, key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url="http://soctriage.test/v1",
            api_key=self.keys[key],
            http_client=self.client,
            max_retries=0,
        )


@asynccontextmanager
async def service(home: Path) -> AsyncIterator[Service]:
    digest = hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()
    settings = Settings(home=home, api_keys=[f"admin:acme:admin:{digest}"], tenant="acme")
    async with Triager(settings) as triager:
        case = await triager.triage(sample(SUDO), tenant="acme")
    keys = {"acme-admin": ADMIN_TOKEN}
    with Store.open(settings) as store:
        for tenant, role in (("acme", "viewer"), ("acme", "analyst"), ("globex", "analyst")):
            keys[f"{tenant}-{role}"] = create_key(store, tenant, role, f"{tenant}-{role}")[1]
    app = create_app(settings, auth_enabled=True)
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://soctriage.test") as client:
            yield Service(client, keys, case.case_id, app)


def sse_events(text: str) -> list[tuple[str | None, Any]]:
    events = []
    for block in text.strip().split("\n\n"):
        name, data = None, None
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = line.removeprefix("data: ")
        events.append((name, data if data == "[DONE]" else json.loads(data or "null")))
    return events


async def test_chat_streams_tokens_then_the_recorded_answer(home: Path) -> None:
    async with service(home) as svc:
        response = await svc.client.post(
            f"/v1/cases/{svc.case_id}/chat",
            json={"question": "why escalated?"},
            headers=svc.headers("acme-analyst"),
        )
        assert response.status_code == 200 and response.headers["content-type"].startswith(
            "text/event-stream"
        )
        events = sse_events(response.text)
        tokens = [data["text"] for name, data in events if name == "token"]
        [(_, answer)] = [(n, d) for n, d in events if n == "answer"]
        assert len(tokens) > 3 and "".join(tokens).strip() == answer["answer"]
        assert "inconclusive" in answer["answer"] and answer["citations"]
        ledger = (
            await svc.client.get(f"/v1/cases/{svc.case_id}/ledger", headers=svc.headers("acme-viewer"))
        ).json()
        asked = ledger[answer["question_seq"] - 1]
        assert (asked["kind"], asked["actor"]) == ("chat_message", "human:acme-analyst")
        assert ledger[answer["answer_seq"] - 1]["actor"] == "assistant"


async def test_chat_needs_the_analyst_role_and_the_right_tenant(home: Path) -> None:
    async with service(home) as svc:
        path = f"/v1/cases/{svc.case_id}/chat"
        viewer = await svc.client.post(path, json={"question": "hi"}, headers=svc.headers("acme-viewer"))
        assert viewer.status_code == 403
        other = await svc.client.post(path, json={"question": "hi"}, headers=svc.headers("globex-analyst"))
        assert other.status_code == 404
        nobody = await svc.client.post(path, json={"question": "hi"})
        assert nobody.status_code == 401
        empty = await svc.client.post(path, json={"question": ""}, headers=svc.headers("acme-analyst"))
        assert empty.status_code == 422 and empty.json()["detail"][0]["loc"] == ["body", "question"]
        completion = svc.openai("globex-analyst")
        with pytest.raises(openai.NotFoundError, match="does not exist"):
            await completion.chat.completions.create(
                model=f"case:{svc.case_id}", messages=[{"role": "user", "content": "hi"}]
            )


async def test_openai_client_talks_to_a_case_with_and_without_streaming(home: Path) -> None:
    async with service(home) as svc:
        client = svc.openai("acme-analyst")
        completion = await client.chat.completions.create(
            model=f"case:{svc.case_id}",
            messages=[
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "Summarize this case"},
            ],
        )
        text = completion.choices[0].message.content or ""
        assert "inconclusive" in text and "[seq" in text and completion.model == f"case:{svc.case_id}"
        extension = completion.model_extra["soctriage"]
        assert extension["case_id"] == svc.case_id and extension["citations"]

        stream = await client.chat.completions.create(
            model=f"case:{svc.case_id}",
            messages=[{"role": "user", "content": "What is the timeline?"}],
            stream=True,
        )
        pieces = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
        assert len(pieces) > 5 and "Timeline of" in "".join(pieces)

        with pytest.raises(openai.BadRequestError, match="case:<case id>"):
            await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        models = await client.models.list()
        assert f"case:{svc.case_id}" in [m.id async for m in models]


async def test_feedback_is_a_ledger_entry_and_changes_what_retrieval_returns(home: Path) -> None:
    async with service(home) as svc:
        path = f"/v1/cases/{svc.case_id}/feedback"
        body = {"disposition": "false_positive", "reason_code": "known_admin_tool", "note": "patching window"}
        refused = await svc.client.post(path, json=body, headers=svc.headers("acme-viewer"))
        assert refused.status_code == 403
        bad = await svc.client.post(path, json={"disposition": "maybe"}, headers=svc.headers("acme-analyst"))
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "disposition"]
        done = await svc.client.post(path, json=body, headers=svc.headers("acme-analyst"))
        assert done.status_code == 200
        ledger = (
            await svc.client.get(f"/v1/cases/{svc.case_id}/ledger", headers=svc.headers("acme-viewer"))
        ).json()
        entry = ledger[done.json()["seq"] - 1]
        assert (entry["kind"], entry["actor"], entry["payload"]) == ("feedback", "human:acme-analyst", body)

        triager: Triager = svc.app.state.cases.triager
        again = await triager.triage(sample(SUDO).model_copy(update={"id": "wazuh-again"}), tenant="acme")
        result = next(
            e
            for e in triager.store.entries(again.case_id)
            if e.kind == "tool_result" and e.payload["tool"] == "similar_cases"
        )
        [past] = result.payload["output"]["cases"]
        assert (past["case_id"], past["disposition"], past["disposition_source"]) == (
            svc.case_id,
            "false_positive",
            "analyst",
        )
