"""Vendor alert ingestion: split inputs into records, detect the vendor format, normalize to `Alert`."""

from soctriage.service.ingest.detect import detect_format
from soctriage.service.ingest.errors import IngestError, Rejection
from soctriage.service.ingest.normalize import (
    DEFAULT_MAX_RECORD_BYTES,
    normalize_bytes,
    normalize_record,
)
from soctriage.service.ingest.reader import iter_records

__all__ = [
    "DEFAULT_MAX_RECORD_BYTES",
    "IngestError",
    "Rejection",
    "detect_format",
    "iter_records",
    "normalize_bytes",
    "normalize_record",
]
