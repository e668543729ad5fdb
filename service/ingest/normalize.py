"""The ingestion entry points: one parsed record → alerts, and a whole input → alerts and rejections."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal

from soctriage.service.domain import ALERT_FORMATS, Alert, AlertFormat
from soctriage.service.ingest import crowdstrike, defender, elastic, ocsf, sentinelone, wazuh
from soctriage.service.ingest.detect import detect_format
from soctriage.service.ingest.errors import IngestError, Rejection
from soctriage.service.ingest.limits import printable
from soctriage.service.ingest.reader import iter_records

DEFAULT_MAX_RECORD_BYTES = 16 * 1024 * 1024

NORMALIZERS: dict[AlertFormat, Callable[[dict[str, Any], str], list[Alert]]] = {
    "crowdstrike": crowdstrike.normalize,
    "defender": defender.normalize,
    "sentinelone": sentinelone.normalize,
    "elastic": elastic.normalize,
    "wazuh": wazuh.normalize,
    "ocsf": ocsf.normalize,
}


def normalize_record(
    record: dict[str, Any], raw: str, fmt: AlertFormat | Literal["auto"] = "auto"
) -> list[Alert]:
    """The alerts in one vendor record (a list: an API page or an incident can hold several, or none).

    `raw` is the record's original text; each alert keeps its own part of it. Raises IngestError.
    """
    detected = detect_format(record)
    if fmt == "auto":
        if detected is None:
            keys = ", ".join(printable(key) for key in list(record)[:12]) + (
                ", …" if len(record) > 12 else ""
            )
            raise IngestError(f"unknown alert format: no known vendor fields (keys: {keys or 'none'})")
        fmt = detected
    elif fmt not in NORMALIZERS:
        raise IngestError(f"unknown format {fmt!r}: expected auto or one of {', '.join(ALERT_FORMATS)}")
    elif detected is not None and detected != fmt:
        raise IngestError(f"--format {fmt} given but the record looks like {detected}")
    try:
        return NORMALIZERS[fmt](record, raw)
    except IngestError:
        raise
    except (TypeError, AttributeError, KeyError, ValueError) as exc:
        # A field of an unexpected JSON type deep inside a record: reject that record, keep the batch going.
        raise IngestError(f"{fmt} record has an unexpected shape: {type(exc).__name__}: {exc}") from exc


def normalize_bytes(
    data: bytes,
    source: str,
    fmt: AlertFormat | Literal["auto"] = "auto",
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> Iterator[Alert | Rejection]:
    """Every alert in an input (JSON object, array or JSONL), and a Rejection for every record that fails."""
    for line, raw, parsed in iter_records(data, source, max_record_bytes):
        if isinstance(parsed, Rejection):
            yield parsed.model_copy(update={"format": None if fmt == "auto" else fmt})
            continue
        try:
            alerts = normalize_record(parsed, raw.decode("utf-8"), fmt)
        except IngestError as exc:
            yield Rejection(
                source=source,
                line=line,
                reason=exc.reason,
                field=exc.field,
                raw=raw,
                format=detect_format(parsed) if fmt == "auto" else fmt if fmt in NORMALIZERS else None,
            )
            continue
        yield from alerts
