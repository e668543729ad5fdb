"""What a command line spells: the script hidden in PowerShell's -EncodedCommand, and the URLs and IP addresses
written in text. Everything here reads alert text, which is untrusted: decoded PowerShell is returned as data
(truncated), never interpreted.
"""

from __future__ import annotations

import base64
import binascii
import re

# -e, -ec, -enc, -encodedcommand (PowerShell accepts any unambiguous prefix), then a base64 blob.
_ENCODED = re.compile(r"(?:^|\s)[-/]e(?:c|nc\w*)?\s+['\"]?([A-Za-z0-9+/=]{16,})", re.IGNORECASE)
_URL_OR_IP = re.compile(r"https?://[^\s'\"<>)]+|\b(?:\d{1,3}\.){3}\d{1,3}\b")


def indicators_in(text: str) -> list[str]:
    """URLs and IPv4 addresses written in `text` (e.g. a decoded PowerShell command), in order, once each."""
    return list(dict.fromkeys(_URL_OR_IP.findall(text)))


def decode_powershell(cmdline: str) -> str | None:
    match = _ENCODED.search(cmdline)
    if not match:
        return None
    blob = match.group(1)
    try:
        text = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True).decode("utf-16-le")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return text[:2000]
