"""Where the tools' data files are: the ones shipped in tools/data, and the optional shared fixtures.

Third-party data (MITRE ATT&CK, GPL-3.0 LOLBAS) is not bundled; a development checkout finds it in
../shared/fixtures beside the repository, and a deployment points Settings at its own copy.
"""

from __future__ import annotations

from pathlib import Path

BUNDLED = Path(__file__).resolve().parent / "data"
SHARED_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


def bundled(name: str) -> Path:
    return BUNDLED / name


def configured_or_shared(configured: Path | None, shared_relative: str) -> Path | None:
    """The configured path, else the shared fixture when it exists, else None (use the built-in table)."""
    if configured is not None:
        return configured
    candidate = SHARED_FIXTURES / shared_relative
    return candidate if candidate.is_file() else None
