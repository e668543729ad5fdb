"""How rules match an alert's structured fields: canonical paths and path globs, which folders only
administrators can write, programs driven by their input, command-line shapes, account globs and signers.
The known-good table (tools/known_good.py), the organisation context and analyst rules all match with these.

Path globs are matched whole and case-insensitively; `*` and `?` stay inside one folder name and a `**`
segment stands for any number of folders. A command-line shape is a regular expression that must match the
whole command line, with no unbounded any-character run (`.*`, `.+`): an attacker could append anything.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Annotated

from pydantic import AfterValidator

# --- paths ---------------------------------------------------------------------------------------------

# Folders only administrators (or the system) can write to. Lower-case, with the trailing separator.
_PROTECTED_ROOTS = (
    "c:\\program files\\",
    "c:\\program files (x86)\\",
    "c:\\windows\\",
    "c:\\programdata\\microsoft\\windows defender\\",
    "c:\\programdata\\microsoft\\windows defender advanced threat protection\\",
    "/usr/",
    "/opt/",
    "/bin/",
    "/sbin/",
    "/lib/",
    "/lib64/",
    "/library/",
    "/system/",
)
# Folders under those roots that ordinary users can write to (public AppLocker-bypass research, Homebrew's
# user-owned prefixes).
_WRITABLE = (
    "c:\\windows\\temp\\",
    "c:\\windows\\tasks\\",
    "c:\\windows\\tracing\\",
    "c:\\windows\\debug\\",
    "c:\\windows\\pla\\",
    "c:\\windows\\registration\\crmlog\\",
    "c:\\windows\\system32\\tasks\\",
    "c:\\windows\\system32\\tasks_migrated\\",
    "c:\\windows\\syswow64\\tasks\\",
    "c:\\windows\\system32\\com\\dmp\\",
    "c:\\windows\\syswow64\\com\\dmp\\",
    "c:\\windows\\system32\\fxstmp\\",
    "c:\\windows\\syswow64\\fxstmp\\",
    "c:\\windows\\system32\\spool\\drivers\\color\\",
    "c:\\windows\\system32\\spool\\printers\\",
    "c:\\windows\\system32\\spool\\servers\\",
    "c:\\windows\\system32\\logfiles\\wmi\\",
    "c:\\windows\\system32\\microsoft\\crypto\\rsa\\machinekeys\\",
    "c:\\windows\\syswow64\\microsoft\\crypto\\rsa\\machinekeys\\",
    "/usr/local/bin/",
    "/usr/local/sbin/",
    "/usr/local/lib/",
    "/usr/local/share/",
    "/usr/local/include/",
    "/usr/local/etc/",
    "/usr/local/var/",
    "/usr/local/opt/",
    "/usr/local/cellar/",
    "/usr/local/caskroom/",
    "/usr/local/homebrew/",
    "/opt/homebrew/",
)
_WILDCARD = re.compile(r"[*?]")
_DEVICE_VOLUME = re.compile(r"^\\device\\harddiskvolume\d+\\", re.IGNORECASE)
_WINDOWS_PREFIXES = (
    (re.compile(r"^(?:\\\\\?\\|\\\?\?\\|\\\\\.\\)(?=[a-z]:\\)", re.IGNORECASE), ""),
    (re.compile(r"^(?:\\systemroot|%systemroot%|%windir%)\\", re.IGNORECASE), "C:\\Windows\\"),
)


def _separator(path: str) -> str:
    return "/" if path.startswith("/") else "\\"


def canonical_path(path: str | None) -> tuple[str, bool] | None:
    """The path as a drive path with backslashes (Windows) or as is (POSIX), and whether it was a
    `\\Device\\HarddiskVolumeN\\` path read as drive C: (the EDR does not say which volume is the system
    one, so a caller may ask for a second fact). None for no path, or one with `.`/`..` segments."""
    if not path or not path.strip():
        return None
    text = path.strip().strip('"')
    device = False
    if not text.startswith("/"):
        text = text.replace("/", "\\")
        for pattern, replacement in _WINDOWS_PREFIXES:
            text = pattern.sub(lambda _, r=replacement: r, text)
        volume = _DEVICE_VOLUME.match(text)
        if volume:
            text, device = "C:\\" + text[volume.end() :], True
    sep = _separator(text)
    text = re.sub(re.escape(sep) + "{2,}", lambda _: sep, text)
    if any(part in (".", "..") for part in text.split(sep)):
        return None
    return text, device


def check_path_glob(glob: str) -> str:
    """Raise ValueError unless `glob` is a usable path glob: absolute (a drive or `/`) or starting with
    `**`, without `.`/`..` segments, and `**` only as a whole segment."""
    if not glob or glob != glob.strip():
        raise ValueError(f"path glob {glob!r} is empty or has surrounding spaces")
    sep = _separator(glob)
    parts = glob.split(sep)
    if not (glob.startswith("/") or re.match(r"^[a-z]:$", parts[0], re.IGNORECASE) or parts[0] == "**"):
        raise ValueError(f"path glob {glob!r} must start with a drive (C:\\), / or **")
    for part in parts[1:] if glob.startswith("/") else parts:
        if part in ("", ".", ".."):
            raise ValueError(f"path glob {glob!r} has an empty, . or .. segment")
        if "**" in part and part != "**":
            raise ValueError(f"path glob {glob!r}: ** must be a whole segment")
    return glob


def _check_path_globs(globs: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(check_path_glob(glob) for glob in globs)


PathGlobs = Annotated[tuple[str, ...], AfterValidator(_check_path_globs)]


@functools.lru_cache(maxsize=8192)
def path_glob_regex(glob: str) -> re.Pattern[str]:
    """The compiled full-match regex of a path glob (see the module docstring for the syntax)."""
    sep = _separator(glob)
    esc = re.escape(sep)
    parts = glob.split(sep)
    out: list[str] = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            out.append(f"(?:[^{esc}]+{esc})*[^{esc}]+" if last else f"(?:[^{esc}]+{esc})*")
            continue
        segment = "".join(
            f"[^{esc}]*" if ch == "*" else f"[^{esc}]" if ch == "?" else re.escape(ch) for ch in part
        )
        out.append(segment if last else segment + esc)
    return re.compile("".join(out), re.IGNORECASE)


def glob_file_name(glob: str) -> str | None:
    """The lower-cased file name a path glob ends in when it is literal ASCII: every path the glob matches
    ends in that name, up to ASCII case (see `path_file_names`). None for a wildcard or a non-ASCII name:
    case-insensitive matching also pairs some non-ASCII letters with ASCII ones."""
    name = glob.rsplit(_separator(glob), 1)[-1]
    return None if _WILDCARD.search(name) or not name.isascii() else name.lower()


def path_file_names(path: str) -> tuple[str, ...] | None:
    """The lower-cased last segment of a canonical path after either separator, one of which is the
    `glob_file_name` of any glob matching it; None when the path is not ASCII (no name key is safe then)."""
    if not path.isascii():
        return None
    return tuple({path.rsplit(sep, 1)[-1].lower() for sep in ("\\", "/")})


def _writable(folder: str) -> bool:
    return any(folder.startswith(w) for w in _WRITABLE)


def path_is_specific(glob: str) -> bool:
    """True when the glob names one file name under a folder only administrators can write, and no
    wildcard in it can reach a user-writable folder."""
    sep = _separator(glob)
    parts = glob.split(sep)
    if _WILDCARD.search(parts[-1]) or parts[-1] == "**":
        return False
    fixed_parts: list[str] = []
    for part in parts[:-1]:
        if _WILDCARD.search(part):
            break
        fixed_parts.append(part)
    has_wildcard = len(fixed_parts) < len(parts) - 1
    fixed = (sep.join(fixed_parts) + sep).lower()
    if not any(fixed.startswith(root) for root in _PROTECTED_ROOTS) or _writable(fixed):
        return False
    # A wildcard after `fixed` may land in any folder below it, so none of those may be writable.
    return not (has_wildcard and any(w.startswith(fixed) for w in _WRITABLE))


def file_name(path: str) -> str:
    return re.split(r"[\\/]", path)[-1].lower()


# Programs that run whatever they are handed beyond the LOLBin table: web servers run uploaded pages, and Task
# Manager's "Create dump file" is a documented way to dump LSASS.
_ALSO_DRIVEN = frozenset({"taskmgr.exe", "explorer.exe", "sqlservr.exe"})


@functools.cache
def driven_programs() -> frozenset[str]:
    """File names (lower case) of programs whose identity says nothing about intent: the built-in LOLBin
    table, web servers and a few more."""
    from soctriage.tools.lineage import WEB_SERVERS
    from soctriage.tools.lolbins import LolbinCatalog

    lolbins = {entry.name.lower() for entry in LolbinCatalog.builtin().entries()}
    return frozenset(lolbins) | WEB_SERVERS | _ALSO_DRIVEN


# --- command lines and accounts ------------------------------------------------------------------------


def check_cmdline_shape(pattern: str) -> str:
    """Raise ValueError unless `pattern` compiles and has no unbounded any-character run."""
    if not pattern.strip():
        raise ValueError("a command-line shape must not be empty")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"command-line shape {pattern!r} is not a regular expression: {exc}") from None
    index, in_class = 0, False
    while index < len(pattern):
        ch = pattern[index]
        if ch == "\\":
            index += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            index += 1
            # A class may open with `^`, and then with a literal `]`.
            index += pattern.startswith("^", index)
            index += pattern.startswith("]", index)
            continue
        elif ch == "." and re.match(r"[*+]|\{\d*,\}", pattern[index + 1 : index + 5]):
            raise ValueError(
                f"command-line shape {pattern!r} has an unbounded any-character run ({ch}"
                f"{pattern[index + 1]}); describe the arguments (e.g. \\S+ for one token) instead"
            )
        index += 1
    return pattern


@functools.lru_cache(maxsize=8192)
def shape_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE | re.DOTALL)


@functools.lru_cache(maxsize=4096)
def account_glob_regex(glob: str) -> re.Pattern[str]:
    """`*` is any text, `?` one character; matched whole and case-insensitively."""
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in glob)
    return re.compile(body, re.IGNORECASE | re.DOTALL)


def account_forms(name: str | None, domain: str | None) -> tuple[str, ...]:
    """The spellings of one account an account glob is matched against."""
    if not name:
        return ()
    forms = [name]
    if domain and "\\" not in name and "@" not in name:
        forms += [f"{domain}\\{name}", f"{name}@{domain}"]
    return tuple(forms)


def same_signer(reported: str | None, valid: bool | None, names: Iterable[str]) -> str | None:
    """The name in `names` the reported signer equals, when the EDR said the signature is valid."""
    if valid is not True or not reported:
        return None
    key = reported.strip().casefold()
    return next((name for name in names if name.strip().casefold() == key), None)
