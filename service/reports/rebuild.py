"""The evidence report rebuilt from exported ledgers (e.g. concatenated `ledger export` files), each chain
verified from its own entries: what lets an auditor check a report without the store."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from soctriage.service.reports.evidence import EvidenceBuilder
from soctriage.service.reports.model import CheckpointCitation, EvidenceReport
from soctriage.service.reports.params import Entry, EvidenceParams
from soctriage.service.store.chain import CaseVerification, ChainChecker


def verify_chain(entries: Sequence[Entry]) -> CaseVerification:
    """Offline check of one exported chain: links and hashes (no stored head to compare the end with)."""
    checker = ChainChecker()
    for entry in entries:
        if checker.feed(entry) is not None:
            break
    problem = checker.finish()
    last = entries[-1] if entries else None
    return CaseVerification(
        str(checker.case_id),
        problem,
        checker.count,
        None if last is None else last.seq,
        None if last is None else last.hash,
    )


def group_by_case(entries: Iterable[Entry]) -> Iterator[list[Entry]]:
    """Consecutive entries of one case, as lists (entries must already be grouped by case)."""
    batch: list[Entry] = []
    for entry in entries:
        if batch and entry.case_id != batch[0].case_id:
            yield batch
            batch = []
        batch.append(entry)
    if batch:
        yield batch


def build_evidence(
    entries: Iterable[Entry],
    params: EvidenceParams,
    *,
    verifications: Mapping[str, CaseVerification] | None = None,
    checkpoint: CheckpointCitation | None = None,
) -> EvidenceReport:
    """The report over `entries` (grouped by case, seq order), e.g. concatenated `ledger export` files.

    Without `verifications`, each chain is verified here from its own entries (links and hashes; the end
    of a chain can only be checked against a head recorded elsewhere, so pass that in `verifications`).
    `checkpoint` is cited as given: rebuilding a store's report from its exports, pass the store's citation.
    """
    builder = EvidenceBuilder(params)
    for case in group_by_case(entries):
        check = verify_chain(case) if verifications is None else verifications.get(case[0].case_id)
        builder.add_case(case, check)
    return builder.report(checkpoint=checkpoint)
