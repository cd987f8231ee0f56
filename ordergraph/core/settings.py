"""Service settings: environment variables for deployment, ``ordergraph.toml`` for plugins."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ordergraph.core.db import DEFAULT_DATABASE_URL


class ConfigError(ValueError):
    pass


# Hours from approval until each step of an order's work is due, by priority.
DEFAULT_DUE_HOURS: dict[str, dict[str, float]] = {
    "pick": {"URGENT": 1, "HIGH": 4, "NORMAL": 12, "LOW": 24},
    "pack": {"URGENT": 2, "HIGH": 6, "NORMAL": 18, "LOW": 36},
    "ship": {"URGENT": 4, "HIGH": 8, "NORMAL": 24, "LOW": 48},
}


@dataclass(frozen=True)
class Settings:
    """Everything the service reads at start-up.

    ``DATABASE_URL``: ``sqlite:///path/file.db`` (default ``sqlite:///ordergraph.db``)
    or ``postgresql://...``. ``REDIS_URL``: when set, jobs run in worker processes and
    subscription events travel through Redis. ``ORDERGRAPH_CONFIG``: the plugin
    configuration file (default ``ordergraph.toml`` when it exists).
    ``ORDERGRAPH_ENV=production`` hides GraphiQL and masks unexpected errors.
    ``ORDERGRAPH_ALLOWED_ORIGINS``: comma-separated browser origins allowed to call
    ``/graphql`` (CORS) and open subscription websockets from other sites (empty:
    same-origin pages and non-browser clients only; ``*``: any).
    """

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    config_path: Path | None = None
    production: bool = False
    allowed_origins: tuple[str, ...] = ()
    plugin_timeout_seconds: float = 10.0
    job_retry_base_seconds: float = 2.0
    # Done jobs are deleted this long after they finished; failed ones are kept.
    outbox_retention_days: float = 7.0
    # How many jobs one runner runs at once.
    job_concurrency: int = 8
    # How long a claimed job stays a runner's without a heartbeat (renewed every third of it).
    job_lease_seconds: float = 30.0
    # With Redis: the longest a job may run on an arq worker (then it fails and is
    # retried); the jobs of a killed worker run again this + 15 seconds after they started.
    job_timeout_seconds: float = 30.0
    # None: every enabled review rule, in the order of the config file.
    review_rules: tuple[str, ...] | None = None
    # Request bodies larger than these are refused (413) while they are read.
    max_webhook_body_bytes: int = 1_000_000
    max_upload_bytes: int = 10_000_000
    max_graphql_body_bytes: int = 1_000_000
    # [ordergraph.due_hours]: step -> priority -> hours; missing entries keep the default.
    due_hours: dict[str, dict[str, float]] = field(default_factory=lambda: DEFAULT_DUE_HOURS)
    # [ordergraph.settlement]: checked by ordergraph.stages.settlement.config at start-up.
    settlement: dict[str, Any] = field(default_factory=dict)
    plugins: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        env = dict(os.environ if env is None else env)
        config_path = env.get("ORDERGRAPH_CONFIG")
        path = Path(config_path) if config_path else Path("ordergraph.toml")
        if config_path and not path.exists():
            raise ConfigError(f"ORDERGRAPH_CONFIG names {path}, which does not exist")
        config = _read_toml(path) if path.exists() else {}
        core = config.get("ordergraph", {})
        values: dict[str, Any] = {
            "database_url": env.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
            "redis_url": env.get("REDIS_URL") or None,
            "config_path": path if path.exists() else None,
            "production": env.get("ORDERGRAPH_ENV", "").lower() == "production",
            "allowed_origins": tuple(
                o.strip() for o in env.get("ORDERGRAPH_ALLOWED_ORIGINS", "").split(",") if o.strip()
            ),
            "plugin_timeout_seconds": float(core.get("plugin_timeout_seconds", 10.0)),
            "job_retry_base_seconds": float(core.get("job_retry_base_seconds", 2.0)),
            "outbox_retention_days": float(core.get("outbox_retention_days", 7.0)),
            "job_concurrency": core.get("job_concurrency", 8),
            "job_lease_seconds": float(core.get("job_lease_seconds", 30.0)),
            "job_timeout_seconds": float(core.get("job_timeout_seconds", 30.0)),
            "review_rules": tuple(core["review_rules"]) if "review_rules" in core else None,
            "max_webhook_body_bytes": core.get("max_webhook_body_bytes", 1_000_000),
            "max_upload_bytes": core.get("max_upload_bytes", 10_000_000),
            "max_graphql_body_bytes": core.get("max_graphql_body_bytes", 1_000_000),
            "due_hours": {
                step: {**hours, **core.get("due_hours", {}).get(step, {})}
                for step, hours in DEFAULT_DUE_HOURS.items()
            },
            "settlement": core.get("settlement", {}),
            "plugins": config.get("plugins", {}),
        }
        values.update(overrides)
        return cls(**values)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        config = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    unknown = set(config) - {"ordergraph", "plugins"}
    if unknown:
        raise ConfigError(f"{path}: unknown table [{sorted(unknown)[0]}] (use [plugins.NAME])")
    for name, table in config.get("plugins", {}).items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: plugins.{name} must be a table")
    _check_core(path, config.get("ordergraph", {}))
    return config


def _check_core(path: Path, core: dict[str, Any]) -> None:
    """The ``[ordergraph]`` table: a misspelt key would otherwise silently keep its default."""
    if not isinstance(core, dict):
        raise ConfigError(f"{path}: ordergraph must be a table ([ordergraph])")
    durations = (
        "plugin_timeout_seconds",
        "job_retry_base_seconds",
        "outbox_retention_days",
        "job_lease_seconds",
        "job_timeout_seconds",
    )
    sizes = ("max_webhook_body_bytes", "max_upload_bytes", "max_graphql_body_bytes")
    known = (*durations, *sizes, "job_concurrency", "review_rules", "due_hours", "settlement")
    unknown = sorted(set(core) - set(known))
    if unknown:
        raise ConfigError(
            f"{path}: ordergraph.{unknown[0]}: unknown setting (known: {', '.join(known)})"
        )
    for key in durations:
        value = core.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            unit = key.rsplit("_", 1)[1]
            raise ConfigError(f"{path}: ordergraph.{key}: expected {unit} (got {value!r})")
    for key in sizes:
        value = core.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(
                f"{path}: ordergraph.{key}: expected a number of bytes (got {value!r})"
            )
    _check_due_hours(path, core.get("due_hours", {}))
    for key in ("job_lease_seconds", "job_timeout_seconds"):
        if core.get(key, 1) < 1:
            raise ConfigError(f"{path}: ordergraph.{key}: expected at least 1 second")
    concurrency = core.get("job_concurrency", 1)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(
            f"{path}: ordergraph.job_concurrency: expected a whole number of at least 1 "
            f"(got {concurrency!r})"
        )
    rules = core.get("review_rules", [])
    if not isinstance(rules, list) or not all(isinstance(name, str) for name in rules):
        raise ConfigError(
            f"{path}: ordergraph.review_rules: expected a list of plugin names (got {rules!r})"
        )


def _check_due_hours(path: Path, due: Any) -> None:
    where = f"{path}: ordergraph.due_hours"
    if not isinstance(due, dict):
        raise ConfigError(f"{where}: expected a table of steps (pick, pack, ship)")
    for step, hours in due.items():
        if step not in DEFAULT_DUE_HOURS:
            raise ConfigError(f"{where}.{step}: unknown step (known: pick, pack, ship)")
        if not isinstance(hours, dict):
            raise ConfigError(f"{where}.{step}: expected a table of priorities")
        for priority, value in hours.items():
            if priority not in DEFAULT_DUE_HOURS[step]:
                raise ConfigError(
                    f"{where}.{step}.{priority}: unknown priority "
                    "(known: URGENT, HIGH, NORMAL, LOW)"
                )
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"{where}.{step}.{priority}: expected hours (got {value!r})")
