"""Process lineage from the alert: the parent -> process chain and the red flags in it.

Everything here reads alert text, which is untrusted: decoded PowerShell is returned as data (truncated),
never interpreted.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field
from soctriage.service.domain import Frozen, ParentProcess
from soctriage.tools.commandline import decode_powershell
from soctriage.tools.lolbins import binary_name
from soctriage.tools.tool_spec import ToolContext, ToolOutput, tool

LineageFlag = Literal[
    "office_spawns_shell",
    "web_server_spawns_shell",
    "script_host_spawns_shell",
    "encoded_powershell",
    "download_cradle",
    "lolbin_in_chain",
    "runs_from_user_writable_path",
    "attack_command",
]

OFFICE = frozenset(
    {"winword.exe", "excel.exe", "powerpnt.exe", "outlook.exe", "msaccess.exe", "mspub.exe", "onenote.exe"}
)
WEB_SERVERS = frozenset({"w3wp.exe", "httpd.exe", "nginx.exe", "tomcat.exe", "php-cgi.exe", "java.exe"})
SCRIPT_HOSTS = frozenset({"wscript.exe", "cscript.exe", "mshta.exe"})
SHELLS = frozenset(
    {
        "cmd.exe",
        "powershell.exe",
        "pwsh.exe",
        "wscript.exe",
        "cscript.exe",
        "mshta.exe",
        "rundll32.exe",
        "regsvr32.exe",
        "bash",
        "sh",
    }
)
_CRADLE = re.compile(
    r"downloadstring|downloadfile|invoke-webrequest|\biwr\b|invoke-restmethod|\birm\b|net\.webclient|"
    r"start-bitstransfer|urlcache|\bcurl(?:\.exe)?\s+-|\bwget\b",
    re.IGNORECASE,
)
# Command shapes with no everyday administrative use: dumping credentials or the AD database, destroying
# backups before encryption, turning off recovery.
ATTACK_COMMANDS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        (
            "lsass memory dump",
            r"comsvcs(\.dll)?\W+\s*(#\s*24|minidump)|(procdump|dumpert|nanodump)\S*\s.*lsass",
        ),
        ("credential tool", r"\b(mimikatz|sekurlsa::|lsadump::|kerberos::golden|invoke-mimikatz|pypykatz)\b"),
        ("AD database copy", r"ntdsutil(\.exe)?\W.*\bifm\b|\\ntds\.dit\b"),
        ("registry hive dump", r"\breg(\.exe)?\s+save\s+hklm\\(sam|security|system)\b"),
        (
            "shadow copy deletion",
            r"vssadmin(\.exe)?\s+(delete\s+shadows|resize\s+shadowstorage)|shadowcopy\s+delete"
            r"|wbadmin(\.exe)?\s+delete\s+(catalog|systemstatebackup)",
        ),
        (
            "recovery disabled",
            r"bcdedit(\.exe)?\s+/set\s+\S*\s*(recoveryenabled\s+no|bootstatuspolicy\s+ignoreallfailures)",
        ),
    )
)
_USER_WRITABLE = re.compile(
    r"\\(?:appdata\\local\\temp|appdata\\roaming|users\\public|programdata|windows\\temp|downloads)\\|^/tmp/",
    re.IGNORECASE,
)


class ProcessNode(Frozen):
    name: str | None = None
    pid: int | None = None
    path: str | None = None
    cmdline: str | None = None
    sha256: str | None = None


class LineageInput(Frozen):
    """No arguments: the lineage comes from the case's alert."""


class Lineage(ToolOutput):
    chain: tuple[ProcessNode, ...] = Field(default=(), description="oldest ancestor first")
    flags: tuple[LineageFlag, ...] = ()
    lolbins: tuple[str, ...] = ()
    decoded_powershell: str | None = Field(default=None, description="decoded -EncodedCommand, truncated")
    attack_commands: tuple[str, ...] = Field(default=(), description="what the attack_command flag matched")

    def summary(self) -> str:
        if not self.chain:
            return "the alert names no process"
        chain = " > ".join(binary_name(n.name or n.path or "") or "?" for n in self.chain)
        return f"{chain}; flags {', '.join(self.flags)}" if self.flags else f"{chain}; no red flags"

    def entities(self) -> tuple[str, ...]:
        values: list[str] = []
        for node in self.chain:
            values += [str(v) for v in (node.name, node.pid, node.path, node.sha256) if v is not None]
        return tuple(values)


def _node(proc: ParentProcess) -> ProcessNode:
    return ProcessNode(name=proc.name, pid=proc.pid, path=proc.path, cmdline=proc.cmdline, sha256=proc.sha256)


@tool(tier="read", timeout_s=5.0)
async def process_lineage(ctx: ToolContext, args: LineageInput) -> Lineage:
    """Process lineage of the alert (parent -> process) with red flags: Office, web server or script host
    spawning a shell, encoded PowerShell, download cradles, LOLBins in the chain, execution from
    user-writable folders."""
    proc = ctx.alert.process
    if proc is None:
        return Lineage()
    chain = [_node(proc.parent), _node(proc)] if proc.parent else [_node(proc)]
    names = [binary_name(n.name or n.path or "") for n in chain]
    flags: list[LineageFlag] = []
    if len(names) == 2 and names[1] in SHELLS:
        parent = names[0]
        if parent in OFFICE:
            flags.append("office_spawns_shell")
        if parent in WEB_SERVERS:
            flags.append("web_server_spawns_shell")
        if parent in SCRIPT_HOSTS and names[1] != parent:
            flags.append("script_host_spawns_shell")
    decoded = None
    for node, name in zip(chain, names, strict=True):
        cmd = node.cmdline or ""
        if name in ("powershell.exe", "pwsh.exe") and (found := decode_powershell(cmd)) is not None:
            decoded = decoded or found
            if "encoded_powershell" not in flags:
                flags.append("encoded_powershell")
        if (_CRADLE.search(cmd) or (decoded and _CRADLE.search(decoded))) and "download_cradle" not in flags:
            flags.append("download_cradle")
        if _USER_WRITABLE.search(node.path or "") and "runs_from_user_writable_path" not in flags:
            flags.append("runs_from_user_writable_path")
    lolbins = tuple(dict.fromkeys(n for n in names if n and ctx.connectors.lolbins.get(n)))
    if lolbins:
        flags.append("lolbin_in_chain")
    commands = [node.cmdline or "" for node in chain] + ([decoded] if decoded else [])
    attacks = [name for name, pattern in ATTACK_COMMANDS if any(pattern.search(c) for c in commands)]
    if attacks:
        flags.append("attack_command")
    return Lineage(
        chain=tuple(chain),
        flags=tuple(flags),
        lolbins=lolbins,
        decoded_powershell=decoded,
        attack_commands=tuple(attacks),
    )


TOOLS = [process_lineage]
