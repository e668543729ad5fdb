"""`soctriage ledger checkpoint | pubkey | verify-file` and the `--checkpoint` half of `ledger verify`: signed
checkpoints of the case ledger (DESIGN §7). Parse, call service/store/checkpoint.py and checkpoint_verify.py,
render."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from soctriage.service.cli_common import EXIT_CHECK_FAILED, fail, write_out
from soctriage.service.config import Settings
from soctriage.service.store import Store, verify_entries
from soctriage.service.store.checkpoint import CheckpointRefused, checkpoint_log_path, write_checkpoint
from soctriage.service.store.checkpoint_heads import checkpoint_scopes
from soctriage.service.store.checkpoint_verify import verify_checkpoints
from soctriage.service.store.proof import (
    ProofError,
    VerifierKey,
    check_commitment,
    describe,
    parse_checkpoint_text,
    read_verifier_keys,
    split_note,
)
from soctriage.service.store.signing import SigningKey, SigningKeyError, load_signing_key
from soctriage.service.store.transcript import read_checkpoint_record, read_entries

PubkeyOption = Annotated[
    Path | None,
    typer.Option(
        "--pubkey",
        help="verifier key file (soctriage ledger pubkey) to check signatures with; default: the public half "
        "of the local signing key, which someone who controls this machine could have replaced",
    ),
]


def _signing_key(settings: Settings, *, create: bool) -> SigningKey:
    try:
        key, created = load_signing_key(settings, create=create)
    except SigningKeyError as exc:
        raise fail(str(exc)) from exc
    if created:
        typer.echo(
            f"created the ledger signing key {key.path} (mode 0600); keep it out of reach of whoever can write "
            "the database, and give your auditors its public key: soctriage ledger pubkey",
            err=True,
        )
    return key


def _read_text(option: str, path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"{option} {path}: cannot read it ({exc})") from exc


def trusted_keys(settings: Settings, pubkey: Path | None, notes: list[str]) -> list[VerifierKey]:
    """The keys signatures are checked with: the --pubkey file, else the local key under each note's origin."""
    if pubkey is not None:
        try:
            return read_verifier_keys(_read_text("--pubkey", pubkey))
        except ProofError as exc:
            raise fail(f"--pubkey {pubkey}: {exc}") from exc
    public = _signing_key(settings, create=False).public
    origins = set()
    for note in notes:
        try:
            origins.add(parse_checkpoint_text(split_note(note)[0])[0])
        except ProofError:
            continue  # reported when the note is opened
    typer.echo(
        f"checking signatures with the local signing key {public.fingerprint[:16]}; an auditor passes --pubkey "
        "with the key they recorded",
        err=True,
    )
    return [public.verifier(origin) for origin in origins]


def verify_against_checkpoints(
    settings: Settings,
    store: Store,
    checkpoints: list[Path],
    pubkey: Path | None,
    case_ids: list[str] | None,
    *,
    as_json: bool = False,
) -> dict[str, Any]:
    """`ledger verify … --checkpoint FILE…`: what the checkpoints show, printed unless `as_json` (the caller
    then prints it in its JSON); its `ok` is True when nothing failed."""
    notes = [(str(path), _read_text("--checkpoint", path)) for path in checkpoints]
    trusted = trusted_keys(settings, pubkey, [text for _, text in notes])
    report = verify_checkpoints(
        store, notes, trusted, case_ids=case_ids, log_file=checkpoint_log_path(settings)
    )
    if not as_json:
        for label in report.checked:
            typer.echo(f"{label}: signature and log ok")
        for problem in report.problems:
            typer.echo(f"CHECKPOINT FAILED: {problem}", err=True)
        for case in report.cases:
            typer.echo(f"{case.case_id}: FAILED against the checkpoint: {case.problem}", err=True)
        typer.echo(
            f"{len(report.covered)} case(s) covered by the checkpoint(s), {len(report.cases)} no longer extend "
            "what was committed"
        )
    return {
        "ok": report.ok,
        "checked": list(report.checked),
        "problems": [str(p) for p in report.problems],
        "covered": len(report.covered),
        "failed": [{"case_id": c.case_id, "problem": str(c.problem)} for c in report.cases],
    }


def register(ledger_app: typer.Typer) -> None:
    ledger_app.command("checkpoint")(checkpoint)
    ledger_app.command("pubkey")(pubkey)
    ledger_app.command("verify-file")(verify_file)


def checkpoint(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="also write the signed checkpoint here")
    ] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="only this tenant's cases (default: every tenant)")
    ] = None,
) -> None:
    """Sign a checkpoint of every case's chain head (RFC 6962 Merkle tree, C2SP signed note, Ed25519).

    Exits 1, signing nothing, when a case an earlier checkpoint committed was cut back, rewritten or deleted."""
    settings = Settings()
    key = _signing_key(settings, create=True)
    log_file = checkpoint_log_path(settings)
    with Store.open(settings) as store:
        try:
            written = write_checkpoint(store, key, tenant=tenant, log_file=log_file)
        except CheckpointRefused as exc:
            raise fail(str(exc), EXIT_CHECK_FAILED) from exc
    assert written is not None  # only_if_changed is off: a checkpoint is always signed
    if out is not None:
        write_out(out, written.note.encode())
    typer.echo(written.note, nl=False)
    typer.echo(
        f"checkpoint #{written.number} of {written.origin}: {written.cases} case(s), tree size "
        f"{written.tree_size}; appended to {log_file}" + (f" and written to {out}" if out else ""),
        err=True,
    )


def pubkey(
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="only the key of this tenant's checkpoints")
    ] = None,
) -> None:
    """Print the verifier keys of this store's checkpoints (C2SP note verifier key format), one per line:
    the every-tenant scope and each tenant that has checkpoints of its own. Give them to your auditors."""
    settings = Settings()
    public = _signing_key(settings, create=True).public
    if tenant is not None:
        scopes: list[str | None] = [tenant]
    else:
        with Store.open(settings) as store:
            scopes = checkpoint_scopes(store)
    for scope in scopes:
        typer.echo(public.verifier(public.origin(scope)).encode())
    typer.echo(f"key fingerprint (sha256 of the Ed25519 public key): {public.fingerprint}", err=True)


def verify_file(
    export: Annotated[Path, typer.Argument(help="a transcript from `ledger export CASE --format jsonl`")],
    pubkey: PubkeyOption = None,
) -> None:
    """Verify one exported transcript offline: its hash chain, the signed checkpoint it carries, and the
    inclusion proof of its committed head. Exits 1 naming what fails."""
    lines = _read_text("verify-file", export).splitlines()
    try:
        entries = list(read_entries(lines, str(export)))
    except ValueError as exc:
        raise fail(str(exc)) from exc
    if not entries:
        raise fail(f"{export}: no ledger entries")
    case_id = entries[0].case_id
    problem = verify_entries(entries)
    if problem is not None:
        raise fail(f"{export}: case {case_id}: FAILED at seq {problem.seq}: {problem}", EXIT_CHECK_FAILED)
    record = read_checkpoint_record(lines)
    if record is None:
        raise fail(
            f"{export}: case {case_id}: the chain is intact, but the export carries no checkpoint (none covered "
            "the case when it was exported: run soctriage ledger checkpoint, then export again)",
            EXIT_CHECK_FAILED,
        )
    note = str(record.get("note", "")) if isinstance(record, dict) else ""
    trusted = trusted_keys(Settings(), pubkey, [note])
    try:
        done = check_commitment(record, case_id, {e.seq: e.hash for e in entries}, trusted)
    except ProofError as exc:
        raise fail(f"{export}: case {case_id}: FAILED: {exc}", EXIT_CHECK_FAILED) from exc
    typer.echo(f"{export}: {describe(case_id, len(entries), done)}")
