"""Build tools/data/known_good.jsonl from upstream checkouts of SigmaHQ rules and LOLRMM.

    .venv/bin/python tools/data/build_known_good.py --sigma PATH/TO/sigma --lolrmm PATH/TO/LOLRMM

Both arguments are folders of plain checkouts (`git clone https://github.com/SigmaHQ/sigma`,
`git clone https://github.com/magicsword-io/LOLRMM`). The upstream commit is read with git when the folder is
a git work tree, or taken from --sigma-revision / --lolrmm-revision. The result replaces --out (default: the
table beside this script); review the diff and commit it with the revisions in the message.

What is kept, and why (see soctriage.tools.known_good_entries for the entry format and the matching rules):

- Sigma: every `filter*` selection a rule's condition only ever negates ("legitimate software that trips
  this rule"), for the log sources whose fields map onto the normalized alert (process creation and access,
  remote threads, image loads, file, network, DNS, pipe and registry events). A selection is kept only when
  every field in it can be represented exactly: path fields with no modifier or startswith / endswith /
  a folder-shaped contains; command lines, accounts and signers only as exact values (a sigma `*` in a
  command line becomes one non-space token). A selection with any other field or modifier is dropped whole,
  since dropping one of its conditions would widen it. Entries that are not specific enough (see
  `KnownGoodEntry`) are dropped; identical criteria from several rules become one entry citing them all. A
  filter excusing remote-access software (T1219) yields a `remote_admin_tool` entry, never a benign one.
- LOLRMM: per tool, one entry for its install paths that name an executable under an admin-only folder,
  and one entry per code-signing signer whose name shares a distinctive word with the tool's name or website
  (platform signers such as Microsoft or Google are never used: they sign far more than the tool).

Licences: SigmaHQ rules are under the Detection Rule License 1.1 (attribution: each entry keeps the rule's id,
title and author); LOLRMM is under Apache-2.0 (each entry names its LOLRMM file and author).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from soctriage.tools.known_good_entries import (
    Criteria,
    Excuses,
    KnownGoodEntry,
    KnownGoodKind,
    KnownGoodSource,
)
from soctriage.tools.matching import (
    canonical_path,
    check_cmdline_shape,
    check_path_glob,
    driven_programs,
    file_name,
    path_is_specific,
)

HERE = Path(__file__).resolve().parent
SIGMA_FOLDERS = ("rules", "rules-threat-hunting", "rules-emerging-threats")
SIGMA_LICENSE = "DRL-1.1"
LOLRMM_LICENSE = "Apache-2.0"
REMOTE_ACCESS = "T1219"

# logsource category -> sigma field -> criterion
_FIELDS: dict[str, dict[str, str]] = {
    "process_creation": {
        "Image": "process_path",
        "ParentImage": "parent_path",
        "CommandLine": "cmdline",
        "ParentCommandLine": "parent_cmdline",
        "User": "user",
    },
    "process_access": {"SourceImage": "process_path", "SourceUser": "user"},
    "create_remote_thread": {"SourceImage": "process_path", "SourceUser": "user"},
    "image_load": {"Image": "process_path", "ImageLoaded": "file_path", "Signature": "file_signer"},
    "file_event": {"Image": "process_path", "TargetFilename": "file_path", "User": "user"},
    "file_change": {"Image": "process_path", "TargetFilename": "file_path", "User": "user"},
    "file_rename": {"Image": "process_path", "TargetFilename": "file_path", "User": "user"},
    "file_delete": {"Image": "process_path", "TargetFilename": "file_path", "User": "user"},
    "file_access": {"Image": "process_path", "TargetFilename": "file_path", "User": "user"},
    "create_stream_hash": {"Image": "process_path", "TargetFilename": "file_path"},
    "network_connection": {"Image": "process_path", "User": "user"},
    "dns_query": {"Image": "process_path", "User": "user"},
    "pipe_created": {"Image": "process_path"},
    "registry_set": {"Image": "process_path", "User": "user"},
    "registry_event": {"Image": "process_path", "User": "user"},
    "registry_add": {"Image": "process_path", "User": "user"},
    "registry_delete": {"Image": "process_path", "User": "user"},
}
_PATHS = {"process_path", "parent_path", "file_path"}
_SHAPES = {"cmdline", "parent_cmdline"}
# `User|contains: [AUTHORI, AUTORI]` is sigma's idiom for the built-in service accounts in any language.
_SYSTEM_ACCOUNT_FRAGMENTS = {"authori", "autori"}
SYSTEM_ACCOUNTS = (
    "NT AUTHORITY\\SYSTEM",
    "NT AUTHORITY\\LOCAL SERVICE",
    "NT AUTHORITY\\NETWORK SERVICE",
    "AUTORITE NT\\*",
    "NT-AUTORITÄT\\*",
    "AUTORIDAD NT\\*",
    "AUTORITÀ NT\\*",
    "SYSTEM",
    "LOCAL SERVICE",
    "NETWORK SERVICE",
)
_PLATFORM_SIGNERS = re.compile(
    r"^(microsoft|google|apple|adobe|oracle|mozilla|amazon|symantec|unity technologies|oculus|openvpn|"
    r"simon tatham|win\.rar|certification authority|\.net|codesigning|globalsigning)",
    re.IGNORECASE,
)
_GENERIC_WORDS = frozenset(
    [
        "software",
        "corporation",
        "corp",
        "limited",
        "technologies",
        "technology",
        "systems",
        "solutions",
        "remote",
        "desktop",
        "control",
        "online",
        "support",
        "network",
        "company",
        "group",
        "services",
        "international",
        "holdings",
        "incorporated",
        "information",
        "informationstechnologie",
        "development",
        "access",
        "assist",
        "manager",
        "management",
        "monitoring",
        "agent",
        "connect",
        "client",
        "server",
        "light",
    ]
)


class Skips(Counter[str]):
    """Why selections and paths were left out, reported at the end of a build."""


# --- sigma ---------------------------------------------------------------------------------------------


def git_revision(folder: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def sigma_rules(root: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    for folder in SIGMA_FOLDERS:
        for path in sorted((root / folder).rglob("*.yml")):
            try:
                doc = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                print(f"{path}: skipped, unreadable: {exc}", file=sys.stderr)
                continue
            if isinstance(doc, dict) and doc.get("status") not in ("deprecated", "unsupported"):
                yield path, doc


_TOKEN = re.compile(r"\(|\)|\bnot\b|\band\b|\bor\b|(?:1|all|any)\s+of\s+[\w*]+|[\w*]+", re.IGNORECASE)
Node = tuple[Any, ...]


def parse_condition(text: str) -> Node:
    """A sigma condition as a tree: ("ref", pattern, quantifier), ("not", n), ("and", [n…]), ("or", [n…]).
    Raises ValueError for what this parser does not understand (aggregations, pipes)."""
    tokens = _TOKEN.findall(text)
    if "|" in text or not tokens:
        raise ValueError(f"unsupported condition {text!r}")
    position = 0

    def peek() -> str | None:
        return tokens[position].lower() if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def expr() -> Node:
        nodes = [term()]
        while peek() == "or":
            take()
            nodes.append(term())
        return nodes[0] if len(nodes) == 1 else ("or", nodes)

    def term() -> Node:
        nodes = [factor()]
        while peek() == "and":
            take()
            nodes.append(factor())
        return nodes[0] if len(nodes) == 1 else ("and", nodes)

    def factor() -> Node:
        token = take() if peek() is not None else ""
        if token.lower() == "not":
            return ("not", factor())
        if token == "(":
            node = expr()
            if take() != ")":
                raise ValueError(f"unbalanced condition {text!r}")
            return node
        quantified = re.match(r"^(1|all|any)\s+of\s+(.+)$", token, re.IGNORECASE)
        if quantified:
            return ("ref", quantified.group(2), "all" if quantified.group(1).lower() == "all" else "1")
        if not token or token.lower() in ("and", "or", ")"):
            raise ValueError(f"malformed condition {text!r}")
        return ("ref", token, None)

    tree = expr()
    if position != len(tokens):
        raise ValueError(f"malformed condition {text!r}")
    return tree


def _refs(pattern: str, names: Iterable[str]) -> list[str]:
    compiled = re.compile(re.escape(pattern).replace(r"\*", ".*") + "$")
    return [name for name in names if compiled.match(name)]


def negated_names(tree: Node, names: Iterable[str]) -> set[str]:
    """The selection names the condition uses only under an odd number of `not`s."""
    names = list(names)
    polarity: dict[str, set[bool]] = {}

    def walk(node: Node, negated: bool) -> None:
        if node[0] == "ref":
            for name in _refs(node[1], names):
                polarity.setdefault(name, set()).add(negated)
        elif node[0] == "not":
            walk(node[1], not negated)
        else:
            for child in node[1]:
                walk(child, negated)

    walk(tree, False)
    return {name for name, seen in polarity.items() if seen == {True}}


def _selection_images(value: Any) -> set[str] | None:
    """File names every branch of a selection pins the process image to (Image or OriginalFileName)."""
    branches = value if isinstance(value, list) else [value]
    names: set[str] = set()
    for branch in branches:
        if not isinstance(branch, dict):
            return None
        found: set[str] = set()
        for key, raw in branch.items():
            field, *mods = str(key).split("|")
            values = _values(raw) or []
            if field == "Image" and mods in ([], ["endswith"]):
                found |= {re.split(r"[\\/]", v)[-1] for v in values if re.search(r"[\\/][^\\/*?]+$", v)}
            elif field == "OriginalFileName" and not mods:
                found |= {v for v in values if not re.search(r"[*?\\/]", v)}
        if not found:
            return None
        names |= found
    return names


def required_images(tree: Node, detection: dict[str, Any]) -> set[str] | None:
    """The image file names the rule's positive selections pin its process to, or None when they do not."""
    selections = [name for name in detection if name != "condition"]

    def walk(node: Node) -> set[str] | None:
        if node[0] == "not":
            return None
        if node[0] == "ref":
            parts = [_selection_images(detection[name]) for name in _refs(node[1], selections)]
            node = ("and" if node[2] == "all" else "or", parts)
            return _combine(node[0], parts)
        return _combine(node[0], [walk(child) for child in node[1]])

    return walk(tree)


def _combine(op: str, parts: list[set[str] | None]) -> set[str] | None:
    if not parts:
        return None
    if op == "or":
        return None if any(p is None for p in parts) else set().union(*parts)  # type: ignore[arg-type]
    known = [p for p in parts if p is not None]
    if not known:
        return None
    return set.intersection(*known) or None


def techniques(tags: Iterable[str]) -> tuple[str, ...]:
    found = []
    for tag in tags:
        match = re.fullmatch(r"attack\.(t\d{4}(?:\.\d{3})?)", str(tag).strip(), re.IGNORECASE)
        if match:
            found.append(match.group(1).upper())
    return tuple(sorted(set(found)))


def _values(value: Any) -> list[str] | None:
    items = value if isinstance(value, list) else [value]
    if not items or any(not isinstance(item, str) or not item for item in items):
        return None
    return items


def _sigma_escapes(text: str) -> bool:
    """Sigma escapes `*`, `?` and `\\` with a backslash; such values are left out rather than guessed at."""
    return bool(re.search(r"\\[*?\\]", text))


def _expand_program_files(glob: str) -> list[str]:
    """Sigma's `C:\\Program Files*\\` means either Program Files folder; a glob `*` there would also reach
    `C:\\Program Filesx\\`, which any user can create."""
    match = re.match(r"^([a-z]:\\)program files\*\\", glob, re.IGNORECASE)
    if not match:
        return [glob]
    rest = glob[match.end() :]
    return [f"{match.group(1)}Program Files\\{rest}", f"{match.group(1)}Program Files (x86)\\{rest}"]


def _sep(value: str) -> str:
    return "/" if "/" in value and "\\" not in value else "\\"


def _path_glob(modifier: str, value: str) -> str | None:
    """One sigma path value as a glob. Sigma's `|endswith: ':\\Windows\\CCM\\CcmExec.exe'` (any drive) is read
    as drive C:, the system drive: narrower than the rule, never wider."""
    sep = _sep(value)
    if value.startswith(":" + sep):
        value = "C" + value
        if modifier == "endswith":
            modifier = ""
        elif modifier == "contains":
            modifier = "startswith" if value.endswith(sep) else "unrepresentable"
    if modifier == "":
        return value
    if modifier == "startswith":
        return (value if value.endswith(sep) else value + "*" + sep) + "**"
    if modifier == "endswith":
        return "**" + sep + (value[1:] if value.startswith(sep) else "*" + value)
    if modifier == "contains" and value.startswith(sep) and value.endswith(sep) and len(value) > 1:
        return f"**{value}**"
    return None


def _path_globs(modifiers: dict[str, list[str]]) -> list[str] | None:
    """Globs for one sigma path field from its values by modifier, or None when not exactly representable."""
    if any(_sigma_escapes(v) for values in modifiers.values() for v in values):
        return None
    if set(modifiers) == {"startswith", "endswith"}:
        globs = []
        for start, end in itertools.product(modifiers["startswith"], modifiers["endswith"]):
            sep = _sep(start)
            if start.startswith(":") or end.startswith(":"):
                return None
            head = start if start.endswith(sep) else start + "*" + sep
            tail = end[1:] if end.startswith(sep) else "*" + end
            globs.append(f"{head}**{sep}{tail}")
    elif len(modifiers) == 1:
        ((modifier, values),) = modifiers.items()
        found = [_path_glob(modifier, value) for value in values]
        if None in found:
            return None
        globs = [g for g in found if g]
    else:
        return None
    expanded = [g for glob in globs for g in _expand_program_files(glob)]
    return expanded if all(_glob_ok(g) for g in expanded) else None


def _glob_ok(glob: str) -> bool:
    try:
        check_path_glob(glob)
    except ValueError:
        return False
    return True


def _shape(value: str) -> str | None:
    if _sigma_escapes(value):
        return None
    body = "".join(r"\S*" if ch == "*" else r"\S" if ch == "?" else re.escape(ch) for ch in value.strip())
    try:
        return check_cmdline_shape(body)
    except ValueError:
        return None


def _accounts(modifiers: dict[str, list[str]]) -> list[str] | None:
    if set(modifiers) == {""}:
        return [v for v in modifiers[""] if not _sigma_escapes(v)] or None
    if (
        set(modifiers) == {"contains"}
        and {v.lower() for v in modifiers["contains"]} <= _SYSTEM_ACCOUNT_FRAGMENTS
    ):
        return list(SYSTEM_ACCOUNTS)
    return None


def selection_criteria(selection: dict[str, Any], fields: dict[str, str], skips: Skips) -> Criteria | None:
    """The criteria of one AND-map of a filter, or None (counted in `skips`) when it cannot be exact."""
    grouped: dict[str, dict[str, list[str]]] = {}
    for key, value in selection.items():
        field, *mods = str(key).split("|")
        criterion = fields.get(field)
        if criterion is None:
            skips[f"field {field} has no normalized counterpart"] += 1
            return None
        if len(mods) > 1 or (mods and mods[0] in ("all", "re", "windash", "cidr", "base64", "base64offset")):
            skips[f"modifier {'|'.join(mods)} cannot be represented"] += 1
            return None
        values = _values(value)
        if values is None:
            skips["null, empty or non-text value"] += 1
            return None
        modifier = mods[0] if mods else ""
        slot = grouped.setdefault(criterion, {})
        if modifier in slot:
            skips["two conditions on one field"] += 1
            return None
        slot[modifier] = values
    out: dict[str, list[str]] = {}
    for criterion, modifiers in grouped.items():
        if criterion in _PATHS:
            result = _path_globs(modifiers)
        elif criterion in _SHAPES:
            shapes = [_shape(v) for v in modifiers.get("", [])] if set(modifiers) == {""} else [None]
            result = None if None in shapes else [s for s in shapes if s]
        elif criterion == "user":
            result = _accounts(modifiers)
        else:  # signers: exact names only
            ok = set(modifiers) == {""} and not any(_sigma_escapes(v) or "*" in v for v in modifiers[""])
            result = modifiers[""] if ok else None
        if not result:
            skips[f"{criterion} values cannot be represented exactly"] += 1
            return None
        out[criterion] = sorted(dict.fromkeys(result))
    return Criteria(**out)


def sigma_entries(
    root: Path, revision: str | None, driven: frozenset[str], rmm_programs: frozenset[str], skips: Skips
) -> list[KnownGoodEntry]:
    entries: dict[str, KnownGoodEntry] = {}
    for path, rule in sigma_rules(root):
        detection = rule.get("detection") or {}
        category = (rule.get("logsource") or {}).get("category")
        fields = _FIELDS.get(str(category))
        filters = [name for name in detection if str(name).startswith("filter")]
        if not filters or fields is None:
            continue
        conditions = detection.get("condition")
        try:
            trees = [
                parse_condition(str(c))
                for c in (conditions if isinstance(conditions, list) else [conditions])
            ]
        except ValueError:
            skips["condition this builder cannot read"] += len(filters)
            continue
        negated = set(filters)
        for tree in trees:
            negated &= negated_names(tree, filters)
        images = required_images(trees[0], detection) if len(trees) == 1 else None
        tags = techniques(rule.get("tags") or [])
        rule_id = str(rule.get("id"))
        for name in filters:
            if name not in negated:
                skips["filter is not only negated in the condition"] += 1
                continue
            branches = detection[name] if isinstance(detection[name], list) else [detection[name]]
            for branch in branches:
                if not isinstance(branch, dict):
                    skips["keyword filter"] += 1
                    continue
                criteria = selection_criteria(branch, fields, skips)
                if criteria is None:
                    continue
                source = KnownGoodSource(
                    kind="sigma",
                    id=rule_id,
                    title=str(rule.get("title")),
                    author=str(rule.get("author")) if rule.get("author") else None,
                    license=SIGMA_LICENSE,
                    url=f"https://github.com/SigmaHQ/sigma/blob/{revision or 'master'}/{path.relative_to(root)}",
                    detail=name,
                    revision=revision,
                )
                for one in split_programs(criteria):
                    kept = narrowed(one, images, driven, skips)
                    if kept is None:
                        continue
                    # Remote-access software is dual-use: only the organisation says whether it is sanctioned.
                    programs = {file_name(g) for g in (*kept.process_path, *kept.parent_path)}
                    remote = REMOTE_ACCESS in tags or bool(programs & rmm_programs)
                    kind: KnownGoodKind = "remote_admin_tool" if remote else "benign_software"
                    _add(entries, "sigma", kind, None, kept, tags, (rule_id,), source, skips)
    return list(entries.values())


def split_programs(criteria: Criteria) -> list[Criteria]:
    """One criteria per program a filter lists (`Image|endswith: [a, b, c]` names three programs), so each is
    judged on its own and merged with the same program from other rules."""
    return [
        criteria.model_copy(
            update={"process_path": (process,) if process else (), "parent_path": (parent,) if parent else ()}
        )
        for process, parent in itertools.product(
            criteria.process_path or [None], criteria.parent_path or [None]
        )
    ]


def narrowed(
    criteria: Criteria, images: set[str] | None, driven: frozenset[str], skips: Skips
) -> Criteria | None:
    """A filter read on its own, away from the rule's selection, must still describe one program doing one
    thing. A filter on the parent alone gets the child images the rule's selection pins; then the criteria
    must be specific with the wider list of input-driven programs (LOLBAS included)."""
    if not criteria.process_path and criteria.parent_path:
        if not images:
            skips["parent-only filter and the rule does not pin the child image"] += 1
            return None
        criteria = criteria.model_copy(update={"process_path": tuple(f"**\\{n}" for n in sorted(images))})
    if not criteria.specific("benign_software", driven):
        skips["not specific: user-writable or wildcard path, bare name, or an input-driven program"] += 1
        return None
    return criteria


def driven_names(lolbas: Path | None) -> frozenset[str]:
    """Input-driven programs: soctriage's own list (LOLBin table, web servers) and the LOLBAS binaries (names
    only, read at build time; nothing of LOLBAS is written out)."""
    names = set(driven_programs())
    if lolbas is not None:
        for folder in ("OSBinaries", "OtherMSBinaries"):
            for path in (lolbas / "yml" / folder).glob("*.yml"):
                doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
                if doc.get("Name"):
                    names.add(str(doc["Name"]).lower())
    return frozenset(names)


def _add(
    entries: dict[str, KnownGoodEntry],
    prefix: str,
    kind: KnownGoodKind,
    tool: str | None,
    criteria: Criteria,
    excused: tuple[str, ...],
    rules: tuple[str, ...],
    source: KnownGoodSource,
    skips: Skips,
) -> None:
    # Matching ignores case, so `C:\\WINDOWS\\system32` and `C:\\Windows\\System32` are one entry.
    key = json.dumps([kind, criteria.model_dump()], sort_keys=True).lower()
    entry_id = f"{prefix}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    old = entries.get(entry_id)
    if old is not None:
        sources = old.sources if source in old.sources else (*old.sources, source)
        entries[entry_id] = old.model_copy(
            update={
                "excuses": Excuses(
                    techniques=tuple(sorted({*old.excuses.techniques, *excused})),
                    sigma_rules=tuple(sorted({*old.excuses.sigma_rules, *rules})),
                ),
                "sources": sources,
            }
        )
        return
    try:
        entries[entry_id] = KnownGoodEntry(
            id=entry_id,
            name=tool or describe(criteria),
            kind=kind,
            tool=tool,
            match=criteria,
            excuses=Excuses(techniques=excused, sigma_rules=rules),
            sources=(source,),
        )
    except ValidationError as exc:
        skips[f"{source.kind}: {exc.errors()[0]['msg'].removeprefix('Value error, ')[:60]}"] += 1


def describe(criteria: Criteria) -> str:
    """A readable name: the process (or its signer), its parent, and which other criteria narrow it."""
    parts = []

    def first(globs: tuple[str, ...]) -> str:
        return globs[0] + (f" (or {len(globs) - 1} more)" if len(globs) > 1 else "")

    if criteria.process_path:
        parts.append(first(criteria.process_path))
    elif criteria.process_signer:
        parts.append("signed by " + " / ".join(criteria.process_signer))
    if criteria.parent_path:
        parts.append("launched by " + first(criteria.parent_path))
    named = {"process_path", "parent_path"} | ({"process_signer"} if not criteria.process_path else set())
    extra = [name for name, value in criteria if value and name not in named]
    return " ".join(parts) + (f" with {', '.join(extra)}" if extra else "")


# --- LOLRMM --------------------------------------------------------------------------------------------

_ENV = (
    (re.compile(r"^%programfiles%\\", re.IGNORECASE), "C:\\Program Files\\"),
    (re.compile(r"^%programfiles\(x86\)%\\", re.IGNORECASE), "C:\\Program Files (x86)\\"),
    (re.compile(r"^%(?:systemroot|windir)%\\", re.IGNORECASE), "C:\\Windows\\"),
)
_NOT_EXECUTABLE = re.compile(
    r"\.(?:log|txt|ini|conf|cfg|json|xml|plist|service|db|dat|msi|dll|sys|lnk|ps1|bat|cmd|vbs|sh|reg|zip)$",
    re.IGNORECASE,
)


def lolrmm_paths(tool: dict[str, Any], skips: Skips) -> list[str]:
    details = tool.get("Details") or {}
    candidates = [str(p) for p in details.get("InstallationPaths") or [] if p]
    for artifact in (tool.get("Artifacts") or {}).get("Disk") or []:
        if isinstance(artifact, dict) and artifact.get("File"):
            candidates.append(str(artifact["File"]))
    kept = []
    for raw in candidates:
        # LOLRMM writes a per-install folder suffix as a placeholder: `ScreenConnect Client (Random)`.
        glob = re.sub(r"\((?:random|[a-z]*id)\)|<random>", "(*)", raw.strip().strip('"'), flags=re.IGNORECASE)
        for pattern, replacement in _ENV:
            glob = pattern.sub(lambda _, r=replacement: r, glob)
        windows = not glob.startswith("/")
        executable = glob.lower().endswith(".exe") if windows else not _NOT_EXECUTABLE.search(glob)
        canonical = canonical_path(glob)
        if not executable or canonical is None or not _glob_ok(glob):
            skips["lolrmm: not an executable path"] += 1
        elif not path_is_specific(glob):
            skips["lolrmm: path not specific (bare name, user folder or wildcard)"] += 1
        else:
            kept.append(glob)
    return sorted(dict.fromkeys(kept))


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]{4,}", text.lower()) if w not in _GENERIC_WORDS}


def lolrmm_signers(tool: dict[str, Any], skips: Skips) -> list[str]:
    website = str((tool.get("Details") or {}).get("Website") or "")
    own = _words(str(tool.get("Name") or "")) | _words(re.sub(r"^https?://", "", website).split("/")[0])
    kept = []
    for cert in (tool.get("CodeSigning") or {}).get("certificates") or []:
        signer = str((cert or {}).get("signer_name") or "").strip()
        if not signer or signer.endswith("\\"):
            continue
        if _PLATFORM_SIGNERS.match(signer):
            skips["lolrmm: platform signer (signs far more than the tool)"] += 1
        elif not _words(signer) & own:
            skips["lolrmm: signer shares no word with the tool's name or website"] += 1
        else:
            kept.append(signer)
    return sorted(dict.fromkeys(kept))


# LOLRMM's PsExec entry spells its service `psexecsvc.exe`; Sysinternals installs `PSEXESVC.exe`.
_ALSO_REMOTE_ADMIN = frozenset({"psexesvc.exe"})


def lolrmm_programs(root: Path) -> frozenset[str]:
    """Executable file names LOLRMM catalogues (PE file names and install paths), lower case."""
    names: set[str] = set(_ALSO_REMOTE_ADMIN)
    for path in (root / "yaml").glob("*.yaml"):
        tool = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        details = tool.get("Details") or {}
        values = [str(p) for p in details.get("InstallationPaths") or []]
        for meta in details.get("PEMetadata") or []:
            if isinstance(meta, dict):
                values += [str(meta.get("Filename") or ""), str(meta.get("OriginalFileName") or "")]
        names |= {
            file_name(v)
            for v in values
            if v.lower().endswith(".exe") and not re.search(r"[*?%]", file_name(v))
        }
    return frozenset(names)


def _lolrmm_source(path: Path, tool: dict[str, Any], revision: str | None) -> KnownGoodSource:
    return KnownGoodSource(
        kind="lolrmm",
        id=path.name,
        title=str(tool["Name"]),
        author=str(tool.get("Author")) if tool.get("Author") else None,
        license=LOLRMM_LICENSE,
        url=f"https://github.com/magicsword-io/LOLRMM/blob/{revision or 'main'}/yaml/{path.name}",
        revision=revision,
    )


def lolrmm_entries(root: Path, revision: str | None, skips: Skips) -> list[KnownGoodEntry]:
    entries: dict[str, KnownGoodEntry] = {}
    # One signer may sign several catalogued tools (ZOHO: Zoho Assist, ManageEngine, ...): one entry names all.
    by_signer: dict[str, tuple[str, list[str], list[KnownGoodSource]]] = {}
    for path in sorted((root / "yaml").glob("*.yaml")):
        try:
            tool = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            print(f"{path}: skipped, unreadable: {exc}", file=sys.stderr)
            continue
        if not isinstance(tool, dict) or not tool.get("Name"):
            continue
        name = str(tool["Name"])
        source = _lolrmm_source(path, tool, revision)
        paths = lolrmm_paths(tool, skips)
        if paths:
            criteria = Criteria(process_path=tuple(paths))
            _add(entries, "lolrmm", "remote_admin_tool", name, criteria, (REMOTE_ACCESS,), (), source, skips)
        for signer in lolrmm_signers(tool, skips):
            _, names, sources = by_signer.setdefault(signer.casefold(), (signer, [], []))
            names.append(name)
            sources.append(source)
    for signer, names, sources in by_signer.values():
        tools = " / ".join(sorted(set(names)))
        criteria = Criteria(process_signer=(signer,))
        key = json.dumps(["remote_admin_tool", criteria.model_dump()], sort_keys=True)
        entry_id = f"lolrmm-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
        entries[entry_id] = KnownGoodEntry(
            id=entry_id,
            name=f"signed by {signer}: {tools}",
            kind="remote_admin_tool",
            tool=tools,
            match=criteria,
            excuses=Excuses(techniques=(REMOTE_ACCESS,)),
            sources=tuple(sources),
        )
    return list(entries.values())


# --- main ----------------------------------------------------------------------------------------------


def build(
    sigma: Path, lolrmm: Path, lolbas: Path | None, sigma_rev: str | None, lolrmm_rev: str | None
) -> tuple[list[KnownGoodEntry], Skips]:
    skips = Skips()
    driven = driven_names(lolbas)
    rmm = lolrmm_programs(lolrmm)
    entries = sigma_entries(sigma, sigma_rev, driven, rmm, skips) + lolrmm_entries(lolrmm, lolrmm_rev, skips)
    return sorted(entries, key=lambda e: (e.kind, e.name.lower(), e.id)), skips


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sigma", type=Path, required=True, help="a checkout of github.com/SigmaHQ/sigma")
    parser.add_argument(
        "--lolrmm", type=Path, required=True, help="a checkout of github.com/magicsword-io/LOLRMM"
    )
    parser.add_argument(
        "--lolbas",
        type=Path,
        help="a checkout of github.com/LOLBAS-Project/LOLBAS: its binary names widen the list of programs that"
        " need a narrowing command line (only the names are read; nothing of LOLBAS is written out)",
    )
    parser.add_argument("--sigma-revision", help="the sigma commit, when --sigma is not a git work tree")
    parser.add_argument("--lolrmm-revision", help="the LOLRMM commit, when --lolrmm is not a git work tree")
    parser.add_argument("--out", type=Path, default=HERE / "known_good.jsonl")
    args = parser.parse_args(argv)
    for label, folder, marker in (("--sigma", args.sigma, "rules"), ("--lolrmm", args.lolrmm, "yaml")):
        if not (folder / marker).is_dir():
            parser.error(
                f"{label} {folder}: no {marker}/ folder here; is it a checkout of the right repository?"
            )
    entries, skips = build(
        args.sigma,
        args.lolrmm,
        args.lolbas,
        git_revision(args.sigma) or args.sigma_revision,
        git_revision(args.lolrmm) or args.lolrmm_revision,
    )
    text = "".join(
        json.dumps(e.model_dump(mode="json", exclude_defaults=True), ensure_ascii=False) + "\n"
        for e in entries
    )
    args.out.write_text(text, encoding="utf-8")
    by_source = Counter(e.sources[0].kind for e in entries)
    by_kind = Counter(e.kind for e in entries)
    print(f"{args.out}: {len(entries)} entries ({dict(by_source)}; {dict(by_kind)})")
    for reason, count in skips.most_common():
        print(f"  left out {count:5d}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
