"""What was in force when an evidence report was made: the soctriage version, and the guard policy and prompt
files by hash. It reads files that tools/ and agents/ own, so only faces (CLI, API) call it."""

from __future__ import annotations

import hashlib
from importlib import metadata, resources

from soctriage.service.config import Settings
from soctriage.service.reports.model import Provenance


def in_force(settings: Settings) -> Provenance:
    from soctriage.agents.prompting import load_prompt
    from soctriage.tools.policy import DEFAULT_POLICY

    policy = settings.policy_path or DEFAULT_POLICY
    try:
        policy_sha256: str | None = hashlib.sha256(policy.read_bytes()).hexdigest()
    except OSError:
        policy_sha256 = None
    names = sorted(
        item.name.removesuffix(".md")
        for item in resources.files("soctriage.prompts").iterdir()
        if item.name.endswith(".md")
    )
    return Provenance(
        soctriage_version=metadata.version("soctriage"),
        policy=str(policy) if settings.policy_path else f"the bundled default ({policy.name})",
        policy_sha256=policy_sha256,
        prompts={name: load_prompt(name).sha256 for name in names},
    )
