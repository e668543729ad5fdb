"""Which vendor format a parsed record is, judged by the fields only that vendor sends."""

from __future__ import annotations

from typing import Any

from soctriage.service.domain import AlertFormat
from soctriage.service.ingest.crowdstrike import is_stream_event
from soctriage.service.ingest.defender import is_incident
from soctriage.service.ingest.elastic import is_elastic
from soctriage.service.ingest.wazuh import is_wazuh

_GRAPH = "#microsoft.graph.security."
_CROWDSTRIKE_KEYS = ("composite_id", "falcon_host_link", "pattern_disposition", "aggregate_id")
_DEFENDER_LEGACY_KEYS = ("alertCreationTime", "computerDnsName", "investigationState")


def detect_format(record: dict[str, Any]) -> AlertFormat | None:
    """The format of `record`, or None when no vendor's tell-tale fields are present."""
    # The order matters only for the broad shapes: OCSF and Elastic documents may carry `rule` objects
    # that would otherwise look like Wazuh's.
    if "class_uid" in record and (
        "finding_info" in record or "metadata" in record or "category_uid" in record
    ):
        return "ocsf"
    if is_stream_event(record):
        return "crowdstrike"
    if is_elastic(record):
        return "elastic"
    if is_wazuh(record):
        return "wazuh"
    if isinstance(record.get("alertInfo"), dict) or isinstance(record.get("threatInfo"), dict):
        return "sentinelone"
    if isinstance(record.get("data"), list) and isinstance(record.get("pagination"), dict):
        return "sentinelone"
    if (
        str(record.get("@odata.type", "")).startswith(_GRAPH)
        or isinstance(record.get("value"), list)
        or is_incident(record)
        or any(key in record for key in _DEFENDER_LEGACY_KEYS)
    ):
        return "defender"
    if any(key in record for key in _CROWDSTRIKE_KEYS) or (
        isinstance(record.get("resources"), list) and isinstance(record.get("meta"), dict)
    ):
        return "crowdstrike"
    return None
