"""Response connectors: the simulator, CrowdStrike Falcon and Microsoft Defender for Endpoint, and which one
Settings configure.

Every connector dedupes by idempotency key: asked twice for the same key it returns the first receipt marked
`duplicate` and does nothing. That is the last line of defence; the runner's `executed_keys` (backed by the
ledger) is the first, and survives restarts.
"""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from soctriage.service.config import Settings
from soctriage.service.domain import Frozen
from soctriage.tools.actions import ActionName, ActionReceipt, action_target
from soctriage.tools.http import HttpConnector, path_segment
from soctriage.tools.tool_spec import ConnectorError


class ResponseConnector(ABC):
    name: str = "connector"
    supported: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self._receipts: dict[str, ActionReceipt] = {}

    async def perform(self, action: ActionName, params: Frozen, idempotency_key: str) -> ActionReceipt:
        done = self._receipts.get(idempotency_key)
        if done is not None:
            return done.model_copy(update={"duplicate": True})
        if action not in self.supported:
            raise ConnectorError(
                f"the {self.name} connector cannot {action.replace('_', ' ')}; "
                f"it supports: {', '.join(sorted(self.supported))}"
            )
        receipt = await self._perform(action, params, idempotency_key)
        self._receipts[idempotency_key] = receipt
        return receipt

    @abstractmethod
    async def _perform(self, action: ActionName, params: Frozen, key: str) -> ActionReceipt: ...


class SimulatorConnector(ResponseConnector):
    """Records what it would do and keeps the resulting state; deterministic receipts, no side effects."""

    name = "simulator"
    supported = frozenset(ActionName.__args__)  # type: ignore[attr-defined]

    def __init__(self) -> None:
        super().__init__()
        self.log: list[ActionReceipt] = []
        self.isolated: set[str] = set()
        self.blocked: set[str] = set()
        self.disabled: set[str] = set()
        self.tickets: dict[str, dict[str, Any]] = {}

    async def _perform(self, action: ActionName, params: Frozen, key: str) -> ActionReceipt:
        data = params.model_dump(mode="json")
        target = action_target(action, params)
        self._apply(action, data, target)
        receipt = ActionReceipt(
            action=action,
            connector=self.name,
            target=target,
            status="simulated",
            idempotency_key=key,
            external_id="sim-" + hashlib.sha256(key.encode()).hexdigest()[:16],
            detail={"would": f"{action} {target}", "params": data},
        )
        self.log.append(receipt)
        return receipt

    def _apply(self, action: ActionName, data: dict[str, Any], target: str) -> None:
        """Keep the state a real EDR would have, so rollbacks and tests can see it."""
        if action in ("isolate_host", "release_host"):
            host = str(data["hostname"]).lower()
            self.isolated.add(host) if action == "isolate_host" else self.isolated.discard(host)
        elif action in ("block_indicator", "unblock_indicator"):
            self.blocked.add(target.lower()) if action == "block_indicator" else self.blocked.discard(
                target.lower()
            )
        elif action in ("disable_user", "enable_user"):
            user = str(data["username"]).lower()
            self.disabled.add(user) if action == "disable_user" else self.disabled.discard(user)
        elif action == "create_ticket":
            self.tickets[target] = data


def _odata_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class _OAuthHttp(HttpConnector):
    """Client-credentials token cached until shortly before it expires."""

    def __init__(self, base_url: str, token_url: str, form: dict[str, str], **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self._token_url = token_url
        self._form = form
        self._token: str | None = None
        self._expires = 0.0

    async def auth(self) -> dict[str, str]:
        if self._token is None or time.monotonic() >= self._expires:
            body = await self.json("POST", self._token_url, data=self._form)
            token = body.get("access_token") if isinstance(body, dict) else None
            if not token:
                raise ConnectorError(f"{self.label}: token endpoint returned no access_token")
            self._token = token
            self._expires = time.monotonic() + max(float(body.get("expires_in", 300)) - 60, 1)
        return {"Authorization": f"Bearer {self._token}"}

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**(await self.auth()), **kwargs.pop("headers", {})}
        response = await self.request(method, path, headers=headers, **kwargs)
        if not response.content:
            return {}
        try:
            body = response.json()
        except ValueError as exc:
            raise ConnectorError(f"{self.label} {method} {path}: response is not JSON") from exc
        if not isinstance(body, dict):
            raise ConnectorError(f"{self.label} {method} {path}: expected a JSON object")
        return body


class CrowdStrikeConnector(ResponseConnector):
    """CrowdStrike Falcon: host containment, RTR kill, custom IOCs."""

    name = "crowdstrike"
    supported = frozenset(
        {"isolate_host", "release_host", "kill_process", "block_indicator", "unblock_indicator"}
    )
    _IOC_TYPES: ClassVar[dict[str, str]] = {
        "sha256": "sha256",
        "md5": "md5",
        "domain": "domain",
        "ip": "ipv4",
    }

    def __init__(self, base_url: str, client_id: str, client_secret: str, **http: Any) -> None:
        super().__init__()
        self.http = _OAuthHttp(
            base_url, "/oauth2/token", {"client_id": client_id, "client_secret": client_secret}, **http
        )
        self.http.label = self.name

    async def _device_id(self, hostname: str) -> str:
        body = await self.http.call(
            "GET", "/devices/queries/devices/v1", params={"filter": f"hostname:{_odata_quote(hostname)}"}
        )
        ids = body.get("resources") or []
        if not ids:
            raise ConnectorError(f"crowdstrike: no device with hostname {hostname!r}")
        return str(ids[0])

    def _ioc_type(self, kind: str) -> str:
        if kind not in self._IOC_TYPES:
            raise ConnectorError(f"crowdstrike: cannot block indicators of type {kind!r}")
        return self._IOC_TYPES[kind]

    async def _perform(self, action: ActionName, params: Frozen, key: str) -> ActionReceipt:
        data = params.model_dump(mode="json")
        detail: dict[str, Any] = {}
        if action in ("isolate_host", "release_host"):
            device = await self._device_id(data["hostname"])
            name = "contain" if action == "isolate_host" else "lift_containment"
            await self.http.call(
                "POST",
                "/devices/entities/devices-actions/v2",
                params={"action_name": name},
                json={"ids": [device]},
            )
            external = device
        elif action == "kill_process":
            device = await self._device_id(data["hostname"])
            session = await self.http.call(
                "POST", "/real-time-response/entities/sessions/v1", json={"device_id": device}
            )
            session_id = (session.get("resources") or [{}])[0].get("session_id")
            if not session_id:
                raise ConnectorError("crowdstrike: RTR session was not opened")
            result = await self.http.call(
                "POST",
                "/real-time-response/entities/active-responder-command/v1",
                json={
                    "base_command": "kill",
                    "command_string": f"kill {data['pid']}",
                    "session_id": session_id,
                },
            )
            external = (result.get("resources") or [{}])[0].get("cloud_request_id") or session_id
            detail["device_id"] = device
        elif action == "block_indicator":
            ioc = {
                "type": self._ioc_type(data["type"]),
                "value": data["indicator"],
                # Falcon prevents only hashes; network IOCs can only detect.
                "action": "prevent" if data["type"] in ("sha256", "md5") else "detect",
                "platforms": ["windows", "mac", "linux"],
                "applied_globally": True,
                "severity": "high",
                "source": "soctriage",
                "description": f"soctriage {key}",
            }
            body = await self.http.call("POST", "/iocs/entities/indicators/v1", json={"indicators": [ioc]})
            external = (body.get("resources") or [{}])[0].get("id")
        else:  # unblock_indicator
            kind = self._ioc_type(data["type"])
            flt = f"type:{_odata_quote(kind)}+value:{_odata_quote(data['indicator'])}"
            found = await self.http.call("GET", "/iocs/queries/indicators/v1", params={"filter": flt})
            ids = [str(i) for i in found.get("resources") or []]
            if ids:
                await self.http.call("DELETE", "/iocs/entities/indicators/v1", params={"ids": ids})
            detail["removed"] = ids
            external = ids[0] if ids else None
        return ActionReceipt(
            action=action,
            connector=self.name,
            target=action_target(action, params),
            status="done",
            idempotency_key=key,
            external_id=external,
            detail=detail,
        )


class DefenderConnector(ResponseConnector):
    """Microsoft Defender for Endpoint: machine isolation, stop-and-quarantine, custom indicators."""

    name = "defender"
    supported = frozenset(
        {"isolate_host", "release_host", "quarantine_file", "block_indicator", "unblock_indicator"}
    )
    _IOC_TYPES: ClassVar[dict[str, str]] = {
        "sha256": "FileSha256",
        "sha1": "FileSha1",
        "md5": "FileMd5",
        "ip": "IpAddress",
        "domain": "DomainName",
        "url": "Url",
    }

    def __init__(
        self, base_url: str, token_url: str, client_id: str, client_secret: str, **http: Any
    ) -> None:
        super().__init__()
        form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
            "scope": "https://api.securitycenter.microsoft.com/.default",
        }
        self.http = _OAuthHttp(base_url, token_url, form, **http)
        self.http.label = self.name

    async def _machine_id(self, hostname: str) -> str:
        name = hostname.lower()
        # Defender lists machines by FQDN; try the exact name, then the short name as a prefix.
        for flt in (
            f"computerDnsName eq {_odata_quote(name)}",
            f"startswith(computerDnsName,{_odata_quote(name + '.')})",
        ):
            body = await self.http.call("GET", "/api/machines", params={"$filter": flt})
            machines = body.get("value") or []
            if machines:
                return str(machines[0]["id"])
        raise ConnectorError(f"defender: no machine named {hostname!r}")

    async def _perform(self, action: ActionName, params: Frozen, key: str) -> ActionReceipt:
        data = params.model_dump(mode="json")
        comment = f"soctriage {key}"
        detail: dict[str, Any] = {}
        if action in ("isolate_host", "release_host", "quarantine_file"):
            machine = await self._machine_id(data["hostname"])
            detail["machine_id"] = machine
            if action == "isolate_host":
                body = await self.http.call(
                    "POST",
                    f"/api/machines/{path_segment(machine)}/isolate",
                    json={"Comment": comment, "IsolationType": "Full"},
                )
            elif action == "release_host":
                body = await self.http.call(
                    "POST", f"/api/machines/{path_segment(machine)}/unisolate", json={"Comment": comment}
                )
            else:
                if not data.get("sha1"):
                    raise ConnectorError("defender: StopAndQuarantineFile needs the file's sha1")
                body = await self.http.call(
                    "POST",
                    f"/api/machines/{path_segment(machine)}/StopAndQuarantineFile",
                    json={"Comment": comment, "Sha1": data["sha1"]},
                )
            external = body.get("id")
        elif action == "block_indicator":
            kind = self._IOC_TYPES[data["type"]]
            body = await self.http.call(
                "POST",
                "/api/indicators",
                json={
                    "indicatorValue": data["indicator"],
                    "indicatorType": kind,
                    "action": "BlockAndRemediate" if kind.startswith("File") else "Block",
                    "title": f"soctriage block {data['indicator']}"[:100],
                    "description": comment,
                    "severity": "High",
                    "generateAlert": True,
                },
            )
            external = str(body.get("id")) if body.get("id") is not None else None
        else:  # unblock_indicator
            found = await self.http.call(
                "GET",
                "/api/indicators",
                params={"$filter": f"indicatorValue eq {_odata_quote(data['indicator'])}"},
            )
            ids = [str(item["id"]) for item in found.get("value") or []]
            for ioc_id in ids:
                await self.http.call("DELETE", f"/api/indicators/{path_segment(ioc_id)}")
            detail["removed"] = ids
            external = ids[0] if ids else None
        return ActionReceipt(
            action=action,
            connector=self.name,
            target=action_target(action, params),
            status="done",
            idempotency_key=key,
            external_id=external,
            detail=detail,
        )


def build_response_connector(settings: Settings, http: dict[str, Any]) -> ResponseConnector | None:
    """The configured EDR connector, or None for the simulator. Missing credentials are a clear error."""
    if settings.response_connector == "crowdstrike":
        if not (settings.crowdstrike_client_id and settings.crowdstrike_client_secret):
            raise ConnectorError(
                "response_connector=crowdstrike needs SOCTRIAGE_CROWDSTRIKE_CLIENT_ID and "
                "SOCTRIAGE_CROWDSTRIKE_CLIENT_SECRET"
            )
        return CrowdStrikeConnector(
            settings.crowdstrike_base_url,
            settings.crowdstrike_client_id,
            settings.crowdstrike_client_secret.get_secret_value(),
            **http,
        )
    if settings.response_connector == "defender":
        token_url = settings.defender_token_url or (
            f"https://login.microsoftonline.com/{settings.defender_tenant_id}/oauth2/v2.0/token"
            if settings.defender_tenant_id
            else None
        )
        if not (token_url and settings.defender_client_id and settings.defender_client_secret):
            raise ConnectorError(
                "response_connector=defender needs SOCTRIAGE_DEFENDER_TENANT_ID (or _TOKEN_URL), "
                "SOCTRIAGE_DEFENDER_CLIENT_ID and SOCTRIAGE_DEFENDER_CLIENT_SECRET"
            )
        return DefenderConnector(
            settings.defender_base_url,
            token_url,
            settings.defender_client_id,
            settings.defender_client_secret.get_secret_value(),
            **http,
        )
    return None
