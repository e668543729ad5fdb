"""Signed ledger checkpoints, through the CLI on SQLite and PostgreSQL.

A hash chain alone misses a cut tail, a re-hashed rewrite and a deleted case: each leaves a consistent chain.
Against a checkpoint each is caught and named, as are a forged checkpoint, one signed by a swapped key, and one
that does not extend its predecessor. Attacks are made the way someone with write access to the database (and,
for the last ones, the signing key) would make them: raw SQL, and the library's own signing code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from soctriage.service.cli import app
from soctriage.service.config import Settings
from soctriage.service.domain import LedgerEntry
from soctriage.service.store import Store
from soctriage.service.store import proof as proof_module
from soctriage.service.store.checkpoint_heads import Head
from soctriage.service.store.merkle import Frontier, inclusion_proof, roots_at
from soctriage.service.store.proof import (
    ProofError,
    VerifierKey,
    check_export,
    leaf_hash,
    note_sha256,
    open_note,
    read_verifier_keys,
    verify_inclusion,
)
from soctriage.service.store.schema import ledger, ledger_checkpoints, ledger_head_log
from soctriage.service.store.signing import SigningKey, load_signing_key
from sqlalchemy import insert, select, text, update
from test_store import BACKENDS, make_alert
from typer.testing import CliRunner

# ---- known answers from other implementations ---------------------------------------------------------------

# RFC 6962's eight test leaves and the root of every prefix (certificate-transparency's published vectors).
CT_LEAVES = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_PATH_5_OF_8 = [
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
]
# golang.org/x/mod/sumdb/note's documented example: its signer key, verifier key, text and signed note.
GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT
    + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_merkle_tree_matches_the_rfc_6962_vectors() -> None:
    leaves = [leaf_hash(bytes.fromhex(data)) for data in CT_LEAVES]
    roots = roots_at(leaves, range(1, 9))
    assert [roots[n].hex() for n in range(1, 9)] == CT_ROOTS
    assert roots_at([], [0])[0].hex() == hashlib.sha256(b"").hexdigest()
    path = inclusion_proof(leaves, 5)
    assert [p.hex() for p in path] == CT_PATH_5_OF_8
    root = bytes.fromhex(CT_ROOTS[-1])
    assert verify_inclusion(leaves[5], 5, 8, path, root)
    assert not verify_inclusion(leaves[4], 5, 8, path, root)
    assert not verify_inclusion(leaves[5], 5, 9, path, root)
    # Every index of every size up to 40 round-trips (odd sizes carry nodes up without a sibling).
    many = [leaf_hash(str(i).encode()) for i in range(40)]
    for size in range(1, 41):
        frontier = Frontier()
        for leaf in many[:size]:
            frontier.append(leaf)
        for index in range(size):
            assert verify_inclusion(
                many[index], index, size, inclusion_proof(many[:size], index), frontier.root()
            )


def test_signed_notes_match_go_sumdb_note_byte_for_byte() -> None:
    seed = base64.b64decode(GO_SIGNER.split("+", 4)[4])[1:]
    key = SigningKey(Ed25519PrivateKey.from_private_bytes(seed), Path("unused"))
    assert key.sign_note(GO_TEXT, "PeterNeumann") == GO_NOTE
    verifier = VerifierKey.parse(GO_VERIFIER)
    assert verifier.encode() == GO_VERIFIER and key.public.verifier("PeterNeumann") == verifier
    assert open_note(GO_NOTE, [verifier])[0] == GO_TEXT
    assert open_note(GO_NOTE, [verifier], backend="openssl")[0] == GO_TEXT
    with pytest.raises(ProofError, match="does not verify"):
        open_note(GO_NOTE.replace("cryptography", "cryptographY"), [verifier])
    with pytest.raises(ProofError, match="not signed by a trusted key"):
        open_note(GO_NOTE, [VerifierKey.for_key("PeterNeumann", b"\x01" * 32)])
    with pytest.raises(ProofError, match="key id"):
        VerifierKey.parse(GO_VERIFIER.replace("c74f20a3", "c74f20a4"))


# ---- a store with checkpoints -------------------------------------------------------------------------------


@dataclass
class Env:
    home: Path
    settings: Settings
    store: Store
    cases: list[str]
    cp1: Path
    pubkey: Path

    @property
    def victim(self) -> str:
        return self.cases[0]

    @property
    def bystander(self) -> str:
        return self.cases[1]

    def sql(self, statement: str, **params: object) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(text(statement), params)


def cli(*args: str) -> object:
    return CliRunner().invoke(app, [str(arg) for arg in args])


@pytest.fixture(params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    """Four cases of ten entries, sealed by checkpoint #1 (cp1.note), and the auditor's copy of the key."""
    monkeypatch.setenv("SOCTRIAGE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SOCTRIAGE_DATABASE_URL", raising=False)
    monkeypatch.delenv("SOCTRIAGE_SIGNING_KEY_PATH", raising=False)
    if request.param == "postgres":
        monkeypatch.setenv("SOCTRIAGE_DATABASE_URL", request.getfixturevalue("pg_url"))
    settings = Settings()
    with Store.open(settings) as store:
        cases = []
        for n in range(4):
            case = store.create_case(make_alert(n), "acme" if n % 2 == 0 else "globex")
            store.append_many(case.id, [("triage_agent", "reasoning", {"step": i}) for i in range(2, 11)])
            cases.append(case.id)
        cp1, pubkey = tmp_path / "cp1.note", tmp_path / "soctriage.pub"
        sealed = cli("ledger", "checkpoint", "--out", cp1)
        assert sealed.exit_code == 0, sealed.output
        keys = cli("ledger", "pubkey")
        assert keys.exit_code == 0, keys.output
        pubkey.write_text(keys.stdout)
        yield Env(tmp_path / "home", settings, store, sorted(cases), cp1, pubkey)


def verify(env: Env, *checkpoints: Path, pubkey: bool = True) -> object:
    args = ["ledger", "verify", "--all"]
    for checkpoint in checkpoints or (env.cp1,):
        args += ["--checkpoint", str(checkpoint)]
    return cli(*args, *(["--pubkey", str(env.pubkey)] if pubkey else []))


def test_an_untouched_store_verifies_against_its_checkpoints(env: Env, tmp_path: Path) -> None:
    note = env.cp1.read_text()
    origin, size, root, time_line, cases_line, *_ = note.split("\n")
    assert origin.endswith("/all-tenants") and size == "4" and len(base64.b64decode(root)) == 32
    assert time_line.startswith("time ") and cases_line == "cases 4"
    assert (env.home / "ledger-signing.key").stat().st_mode & 0o777 == 0o600
    assert [key.name for key in read_verifier_keys(env.pubkey.read_text())] == [origin]

    ok = verify(env)
    assert ok.exit_code == 0, ok.output
    assert "signature and log ok" in ok.stdout and "4 case(s) covered" in ok.stdout

    env.store.append(env.victim, "human:alice", "note", {"text": "later work"})
    second = cli("ledger", "checkpoint", "--out", tmp_path / "cp2.note")
    assert second.exit_code == 0, second.output
    cp2 = (tmp_path / "cp2.note").read_text()
    assert cp2.split("\n")[1] == "5" and f"previous {note_sha256(note)}\n" in cp2
    both = verify(env, env.cp1, tmp_path / "cp2.note")
    assert both.exit_code == 0, both.output
    one = cli("ledger", "verify", env.victim, "--checkpoint", env.cp1, "--pubkey", env.pubkey)
    assert one.exit_code == 0 and "1 case(s) covered" in one.stdout
    # Without --pubkey the local key is used, and says so.
    local = verify(env, pubkey=False)
    assert local.exit_code == 0 and "local signing key" in local.stderr


def cut_tail(env: Env) -> None:
    """Delete the last three entries and move the head back: no hashing needed."""
    env.sql("DELETE FROM ledger WHERE case_id = :c AND seq > 7", c=env.victim)
    env.sql(
        "UPDATE cases SET head_seq = 7, head_hash = (SELECT hash FROM ledger WHERE case_id = :c AND seq = 7)"
        " WHERE id = :c",
        c=env.victim,
    )


def rehash_from_seq_5(env: Env) -> None:
    """Rewrite entry 5 and re-hash every entry after it, then the head: a chain that verifies."""
    entries = env.store.entries(env.victim)
    prev = entries[3].hash
    with env.store.engine.begin() as conn:
        for entry in entries[4:]:
            payload = {"step": "nothing to see"} if entry.seq == 5 else entry.payload
            digest = LedgerEntry.compute_hash(
                entry.case_id, entry.seq, entry.ts, entry.actor, entry.kind, payload, prev
            )
            conn.execute(
                update(ledger)
                .where(ledger.c.case_id == env.victim, ledger.c.seq == entry.seq)
                .values(payload=payload, prev_hash=prev, hash=digest)
            )
            prev = digest
    env.sql("UPDATE cases SET head_hash = :h WHERE id = :c", h=prev, c=env.victim)


def delete_case(env: Env) -> None:
    for table in ("ledger", "alerts"):
        env.sql(f"DELETE FROM {table} WHERE case_id = :c", c=env.victim)
    env.sql("DELETE FROM cases WHERE id = :c", c=env.victim)


@pytest.mark.parametrize(
    ("attack", "named"),
    [
        (cut_tail, "committed seq 10, but the ledger now ends at seq 7"),
        (rehash_from_seq_5, "rewritten: entry 10 no longer has the hash"),
        (delete_case, "committed it at seq 10, and the store no longer has the case"),
    ],
    ids=["cut-tail", "rehashed-rewrite", "deleted-case"],
)
def test_what_the_chain_misses_is_caught_against_the_checkpoint(env: Env, attack: object, named: str) -> None:
    attack(env)  # type: ignore[operator]
    chain_only = cli("ledger", "verify", "--all")
    assert chain_only.exit_code == 0, "the hash chain alone cannot see this attack"

    caught = verify(env)
    assert caught.exit_code == 1
    [line] = [line for line in caught.stderr.splitlines() if "FAILED against the checkpoint" in line]
    assert line.startswith(f"{env.victim}: ") and named in line
    assert env.bystander not in caught.stderr
    # The signer refuses to commit to the tampered store, naming the case.
    refused = cli("ledger", "checkpoint")
    assert refused.exit_code == 1 and env.victim in refused.stderr and "not signing" in refused.stderr
    # The evidence report says so too.
    report = cli("report", "evidence", "--format", "json")
    assert report.exit_code == 1
    cited = json.loads(report.stdout)["checkpoint"]
    assert cited["signature_check"] == "verified" and any(env.victim in p for p in cited["problems"])


def test_a_forged_checkpoint_is_rejected(env: Env, tmp_path: Path) -> None:
    note = env.cp1.read_text()
    lines = note.split("\n")
    for index, forged_line in [(1, "3"), (4, "cases 3"), (2, base64.b64encode(b"\0" * 32).decode())]:
        forged = tmp_path / f"forged-{index}.note"
        forged.write_text("\n".join([*lines[:index], forged_line, *lines[index + 1 :]]))
        result = verify(env, forged)
        assert result.exit_code == 1
        assert f"CHECKPOINT FAILED: {forged}: signature by soctriage/" in result.stderr
        assert "does not verify: the checkpoint was altered or forged" in result.stderr
    signature = lines[-2].rsplit(" ", 1)[1]
    flipped = base64.b64encode(bytes([b ^ (i == 10) for i, b in enumerate(base64.b64decode(signature))]))
    forged = tmp_path / "forged-signature.note"
    forged.write_text(note.replace(signature, flipped.decode()))
    assert "does not verify" in verify(env, forged).stderr


def test_a_swapped_signing_key_is_refused_and_what_it_signs_is_not_trusted(env: Env, tmp_path: Path) -> None:
    cut_tail(env)
    key_file = env.home / "ledger-signing.key"
    key_file.unlink()
    assert load_signing_key(env.settings, create=True)[1]  # the intruder's own key, in its place
    refused = cli("ledger", "checkpoint")
    assert refused.exit_code == 1 and "restore the original signing key" in refused.stderr

    # The intruder removes the database's checkpoints and signs a fresh log with the new key.
    env.sql("DELETE FROM ledger_head_log")
    env.sql("DELETE FROM ledger_checkpoints")
    forged = tmp_path / "forged.note"
    assert cli("ledger", "checkpoint", "--out", forged).exit_code == 0
    untrusted = verify(env, forged)
    assert untrusted.exit_code == 1 and "not signed by a trusted key" in untrusted.stderr
    # The auditor's checkpoint still names the case, from the copy of the log kept beside the store.
    caught = verify(env)
    assert caught.exit_code == 1
    assert f"{env.victim}: FAILED against the checkpoint: cut back" in caught.stderr
    assert "database's head log no longer reproduces its root" in caught.stderr
    assert "checkpoint #1 of the file beside the store is not in the database" in caught.stderr


def insider_signs(env: Env, change_log: str) -> None:
    """Someone holding the key and the database signs checkpoint #2 over a log that forgets the victim's tail:
    either appending its cut-back head, or rewriting its committed leaf in place."""
    key, _ = load_signing_key(env.settings, create=False)
    origin = key.public.origin(None)
    with env.store.engine.begin() as conn:
        log = [
            Head(*row)
            for row in conn.execute(
                select(ledger_head_log.c["case_id", "head_seq", "head_hash"]).order_by(ledger_head_log.c.idx)
            )
        ]
        cut = conn.execute(
            text("SELECT head_seq, head_hash FROM cases WHERE id = :c"), {"c": env.victim}
        ).one()
        if change_log == "append":
            log.append(Head(env.victim, cut[0], cut[1]))
            conn.execute(
                insert(ledger_head_log).values(
                    origin=origin, idx=len(log) - 1, case_id=env.victim, head_seq=cut[0], head_hash=cut[1]
                )
            )
        else:
            index = next(i for i, head in enumerate(log) if head.case_id == env.victim)
            log[index] = Head(env.victim, cut[0], cut[1])
            conn.execute(
                update(ledger_head_log)
                .where(ledger_head_log.c.idx == index)
                .values(head_seq=cut[0], head_hash=cut[1])
            )
        frontier = Frontier()
        for head in log:
            frontier.append(head.leaf())
        first = conn.execute(select(ledger_checkpoints.c.note)).scalar_one()
        body = (
            f"{origin}\n{len(log)}\n{base64.b64encode(frontier.root()).decode()}\ntime 2030-01-01T00:00:00Z\n"
        )
        body += f"cases 4\nprevious {note_sha256(first)}\n"
        row = conn.execute(select(ledger_checkpoints)).one()._asdict()
        conn.execute(
            insert(ledger_checkpoints).values(
                {**row, "number": 2, "tree_size": len(log), "note": key.sign_note(body, origin)}
            )
        )


@pytest.mark.parametrize("change_log", ["append", "rewrite"])
def test_a_checkpoint_that_does_not_extend_its_predecessor_is_caught(env: Env, change_log: str) -> None:
    cut_tail(env)
    insider_signs(env, change_log)
    caught = verify(env)
    assert caught.exit_code == 1
    [problem] = [
        line for line in caught.stderr.splitlines() if "checkpoint #2" in line and "does not extend" in line
    ]
    assert f"does not extend {env.cp1} (checkpoint #1 of soctriage/" in problem
    if change_log == "append":
        assert f"case {env.victim} goes back from seq 10 to seq 7" in problem
    else:
        assert f"its log changes what it committed for {env.victim}" in problem
    assert f"{env.victim}: FAILED against the checkpoint: cut back" in caught.stderr
    assert env.bystander not in caught.stderr
    # Nor does the signer build on that log.
    refused = cli("ledger", "checkpoint")
    assert refused.exit_code == 1
    if change_log == "append":
        assert (
            f"has case heads going back (a checkpoint was signed over cases that had been cut back or rewritten): {env.victim}"
            in refused.stderr
        )
    else:
        assert "the head log in the database no longer reproduces checkpoint #1" in refused.stderr


def export(env: Env, case_id: str, path: Path) -> Path:
    result = cli("ledger", "export", case_id, "--format", "jsonl", "--out", path)
    assert result.exit_code == 0, result.output
    return path


def standalone(*args: object) -> subprocess.CompletedProcess[str]:
    """proof.py as an auditor runs it: plain Python, no site-packages (so no `cryptography`: openssl checks)."""
    script = Path(proof_module.__file__)
    return subprocess.run(
        [sys.executable, "-I", "-S", str(script), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_an_export_verifies_offline_with_soctriage_or_with_python_alone(env: Env, tmp_path: Path) -> None:
    env.store.append(env.victim, "human:alice", "note", {"text": "after the checkpoint"})
    path = export(env, env.victim, tmp_path / "victim.jsonl")
    *entries, record = path.read_text().splitlines()
    assert len(entries) == 11 and json.loads(record)["checkpoint"]["head_seq"] == 10

    ok = cli("ledger", "verify-file", path, "--pubkey", env.pubkey)
    assert ok.exit_code == 0, ok.output
    assert "seq 1-10 committed by the checkpoint of soctriage/" in ok.stdout
    assert "seq 11-11 not yet covered by a checkpoint" in ok.stdout
    alone = standalone(path, "--pubkey", env.pubkey)
    assert alone.returncode == 0, alone.stderr
    assert "signature by key" in alone.stdout and "verified" in alone.stdout
    trusted = read_verifier_keys(env.pubkey.read_text())
    assert check_export(path.read_text().splitlines(), trusted).startswith(f"case {env.victim}: 11 entries")

    def tampered(name: str, lines: list[str]) -> Path:
        (tmp_path / name).write_text("\n".join(lines) + "\n")
        return tmp_path / name

    edited = json.loads(entries[4])
    edited["payload"]["step"] = 999
    bad_entry = tampered("edited.jsonl", [*entries[:4], json.dumps(edited), *entries[5:], record])
    proof_record = json.loads(record)
    proof_record["checkpoint"]["leaf_index"] += 1
    bad_proof = tampered("proof.jsonl", [*entries, json.dumps(proof_record)])
    other = export(env, env.bystander, tmp_path / "bystander.jsonl").read_text().splitlines()[-1]
    wrong_case = tampered("swapped.jsonl", [*entries, other])
    for bad, reason in [
        (bad_entry, "entry 5 hash mismatch"),
        (bad_proof, "inclusion proof"),
        (wrong_case, "not an entry of this chain"),
    ]:
        result = cli("ledger", "verify-file", bad, "--pubkey", env.pubkey)
        assert result.exit_code == 1 and reason in result.stderr, (bad, result.output)
        assert standalone(bad, "--pubkey", env.pubkey).returncode == 1

    no_checkpoint = tampered("bare.jsonl", entries)
    result = cli("ledger", "verify-file", no_checkpoint, "--pubkey", env.pubkey)
    assert result.exit_code == 1 and "carries no checkpoint" in result.stderr
    # A key that is not the store's: the signature is not trusted.
    stranger = tmp_path / "stranger.pub"
    stranger.write_text(VerifierKey.for_key(trusted[0].name, b"\x07" * 32).encode() + "\n")
    assert "not signed by a trusted key" in cli("ledger", "verify-file", path, "--pubkey", stranger).stderr


def test_tenant_scope_has_its_own_log_and_key_name(env: Env, tmp_path: Path) -> None:
    acme = cli("ledger", "checkpoint", "--tenant", "acme", "--out", tmp_path / "acme.note")
    assert acme.exit_code == 0, acme.output
    note = (tmp_path / "acme.note").read_text()
    assert note.split("\n")[0].endswith("/tenant/acme") and note.split("\n")[1] == "2"
    keys = cli("ledger", "pubkey").stdout.splitlines()
    assert len(keys) == 2 and keys[1].startswith(note.split("\n")[0] + "+")
    case_id = next(c for c in env.cases if env.store.get_case(c).tenant == "acme")  # type: ignore[union-attr]
    exported = export(env, case_id, tmp_path / "acme.jsonl").read_text()
    assert "/tenant/acme" in exported.splitlines()[-1]
    assert cli("ledger", "verify-file", tmp_path / "acme.jsonl", "--pubkey", env.pubkey).exit_code == 1
    (tmp_path / "all.pub").write_text("\n".join(keys) + "\n")
    assert (
        cli("ledger", "verify-file", tmp_path / "acme.jsonl", "--pubkey", tmp_path / "all.pub").exit_code == 0
    )


def test_a_key_file_others_can_read_is_refused(home: Path) -> None:
    home.mkdir(parents=True)
    key = home / "ledger-signing.key"
    key.write_bytes(b"")
    key.chmod(0o644)
    result = cli("ledger", "checkpoint")
    assert result.exit_code == 2 and "chmod 600" in result.stderr


async def test_workers_sign_a_checkpoint_while_cases_change(home: Path) -> None:
    import asyncio

    from soctriage.service.worker import sign_checkpoints

    settings = Settings(home=home, checkpoint_interval_s=0.05)
    with Store.open(settings) as store:
        case = store.create_case(make_alert(1), "acme")
        stop = asyncio.Event()
        task = asyncio.create_task(sign_checkpoints(settings, store, stop))

        async def numbers() -> list[int]:
            await asyncio.sleep(0.3)
            with store.engine.connect() as conn:
                return list(conn.execute(select(ledger_checkpoints.c.number)).scalars())

        assert await numbers() == [1]  # one checkpoint, then none while nothing changes
        store.append(case.id, "system", "note", {"n": 1})
        assert await numbers() == [1, 2]
        stop.set()
        await task
    assert (home / "ledger-checkpoints.jsonl").read_text().count("\n") == 2
