"""Finding, configuring and calling plugins.

Plugins are modules (or objects) with ``@hookimpl`` functions, installed through
the ``ordergraph.plugins`` entry-point group and enabled in ``ordergraph.toml``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import pluggy

from ordergraph.core import hookspecs
from ordergraph.core.errors import DomainError
from ordergraph.core.money import parse_amount

ENTRY_POINT_GROUP = "ordergraph.plugins"
CATEGORIES = (
    "channel",
    "review_rule",
    "assignment",
    "carrier",
    "payment",
    "promotion",
    "notifier",
    "other",
)

hookimpl = pluggy.HookimplMarker("ordergraph")
log = logging.getLogger(__name__)


class PluginConfigError(ValueError):
    """A plugin's configuration is invalid; raised at start-up."""


@dataclass(frozen=True)
class Setting:
    """One field of a plugin's settings schema."""

    name: str
    type: type = str
    default: Any = None
    required: bool = False
    secret: bool = False
    description: str = ""
    choices: tuple[str, ...] = ()
    # For ``type=dict``: the type of every value of the table (keys are strings).
    item_type: type = str
    # Turns the checked value into what the plugin uses; a ValueError names the problem.
    parse: Callable[[Any], Any] | None = None

    def coerce(self, plugin: str, value: Any) -> Any:
        where = f"plugins.{plugin}.{self.name}"
        if self.type is dict:
            if not isinstance(value, dict):
                raise PluginConfigError(f"{where}: expected a table (got {value!r})")
            return {
                key: Setting(f"{self.name}.{key}", self.item_type).coerce(plugin, item)
                for key, item in value.items()
            }
        try:
            if self.type is bool:
                if not isinstance(value, bool):
                    raise ValueError("expected true or false")
            elif self.type is int:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError("expected a whole number")
            elif self.type is Decimal:
                value = parse_amount(value if not isinstance(value, float) else str(value))
            elif self.type is str:
                if not isinstance(value, str):
                    raise ValueError("expected a string")
            elif self.type is list:
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ValueError("expected a list of strings")
            else:
                value = self.type(value)
        except (TypeError, ValueError) as exc:
            raise PluginConfigError(f"{where}: {exc} (got {value!r})") from None
        if self.choices and value not in self.choices:
            raise PluginConfigError(
                f"{where}: must be one of {', '.join(self.choices)} (got {value!r})"
            )
        if self.parse is not None:
            try:
                return self.parse(value)
            except ValueError as exc:
                raise PluginConfigError(f"{where}: {exc}") from None
        return value

    @property
    def type_name(self) -> str:
        names = {Decimal: "decimal", list: "list[str]"}
        if self.type is dict:
            return f"table of {names.get(self.item_type, self.item_type.__name__)}"
        return names.get(self.type, self.type.__name__)


@dataclass(frozen=True)
class PluginInfo:
    category: str
    description: str
    settings: tuple[Setting, ...] = ()
    # Built-in plugins that most deployments need are on unless switched off.
    enabled_by_default: bool = False
    # A carrier plugin that follows every courier's parcels by tracking number
    # (AfterShip): with it enabled, a shipment may name any carrier.
    tracks_any_carrier: bool = False


@dataclass
class LoadedPlugin:
    name: str
    module: Any
    info: PluginInfo
    enabled: bool
    settings: dict[str, Any] = field(default_factory=dict)

    def masked_settings(self) -> dict[str, Any]:
        secret = {s.name for s in self.info.settings if s.secret}
        return {
            k: ("********" if k in secret and v not in (None, "") else v)
            for k, v in self.settings.items()
        }


@dataclass(frozen=True)
class PluginFailure:
    plugin: str
    hook: str
    error: str
    exception: BaseException | None = field(default=None, compare=False, repr=False)


@dataclass
class HookResults:
    """What one hook call produced: (plugin, result) pairs and the plugins that failed."""

    results: list[tuple[str, Any]] = field(default_factory=list)
    failures: list[PluginFailure] = field(default_factory=list)

    @property
    def values(self) -> list[Any]:
        return [value for _, value in self.results]


def _info_of(name: str, module: Any) -> PluginInfo:
    describe = getattr(module, "plugin_info", None)
    if describe is None:
        return PluginInfo(category="other", description="")
    info = describe()
    if not isinstance(info, PluginInfo):
        raise PluginConfigError(f"plugin {name}: plugin_info() must return a PluginInfo")
    if info.category not in CATEGORIES:
        raise PluginConfigError(
            f"plugin {name}: category {info.category!r} is not one of {', '.join(CATEGORIES)}"
        )
    return info


def _reject_unknown_settings(name: str, info: PluginInfo, table: Mapping[str, Any]) -> None:
    """Checked for disabled plugins too: a misspelt ``enabled`` must not pass unnoticed."""
    known = [s.name for s in info.settings]
    unknown = sorted(set(table) - set(known) - {"enabled"})
    if unknown:
        raise PluginConfigError(
            f"plugins.{name}.{unknown[0]}: unknown setting"
            + (f" (known: {', '.join(known)})" if known else " (this plugin has no settings)")
        )


def _validate_settings(name: str, info: PluginInfo, table: Mapping[str, Any]) -> dict[str, Any]:
    """The enabled plugin's settings, coerced, with defaults; its keys are known already."""
    values = {}
    for setting in info.settings:
        if setting.name in table:
            values[setting.name] = setting.coerce(name, table[setting.name])
        elif setting.required:
            raise PluginConfigError(f"plugins.{name}.{setting.name}: required setting is missing")
        else:
            values[setting.name] = setting.default
    return values


class PluginManager:
    """The installed plugins, which are enabled, and how to call their hooks."""

    def __init__(
        self,
        installed: Mapping[str, Any],
        config: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        timeout: float = 10.0,
    ) -> None:
        config = config or {}
        unknown = sorted(set(config) - set(installed))
        if unknown:
            raise PluginConfigError(
                f"plugins.{unknown[0]}: no installed plugin has this name "
                f"(installed: {', '.join(sorted(installed)) or 'none'})"
            )
        self.timeout = timeout
        self.pm = pluggy.PluginManager("ordergraph")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, LoadedPlugin] = {}
        self.internal: dict[str, LoadedPlugin] = {}
        for name, module in installed.items():
            info = _info_of(name, module)
            table = config.get(name, {})
            enabled = table.get("enabled", info.enabled_by_default)
            if not isinstance(enabled, bool):
                raise PluginConfigError(f"plugins.{name}.enabled: expected true or false")
            _reject_unknown_settings(name, info, table)
            settings = _validate_settings(name, info, table) if enabled else {}
            self.plugins[name] = LoadedPlugin(name, module, info, enabled, settings)
            if enabled:
                self.pm.register(module, name=name)

    @classmethod
    def from_entry_points(
        cls,
        config: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        timeout: float = 10.0,
    ) -> PluginManager:
        installed: dict[str, ModuleType] = {}
        # Sorted by name, so hooks run in the same order on every machine.
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
            if ep.name in installed:
                raise PluginConfigError(f"two installed packages both provide plugin {ep.name}")
            try:
                installed[ep.name] = ep.load()
            except Exception as exc:
                raise PluginConfigError(
                    f"plugin {ep.name} cannot be loaded from {ep.value}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        return cls(installed, config, timeout=timeout)

    def add_internal(self, name: str, module: Any) -> None:
        """Register one of the core's own stages: its hooks run like a plugin's, always
        enabled, without settings, and it is not listed among the installed plugins."""
        if name in self.plugins:
            raise PluginConfigError(f"plugin {name}: the name is taken by a stage of the core")
        self.internal[name] = LoadedPlugin(name, module, _info_of(name, module), True)
        self.pm.register(module, name=name)

    def enabled(self) -> list[LoadedPlugin]:
        return [p for p in self.plugins.values() if p.enabled]

    def _impls(self, hook: str, only: Sequence[str] | None = None) -> list[pluggy.HookImpl]:
        """Implementations in registration order, or in the order of ``only`` (names)."""
        # pluggy lists them in registration order (and calls them in reverse).
        impls = getattr(self.pm.hook, hook).get_hookimpls()
        if only is None:
            return impls
        by_name = {impl.plugin_name: impl for impl in impls}
        return [by_name[name] for name in only if name in by_name]

    def _kwargs(self, impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> dict[str, Any]:
        plugin = self.plugins.get(impl.plugin_name) or self.internal[impl.plugin_name]
        available = {**kwargs, "settings": plugin.settings}
        return {arg: available[arg] for arg in impl.argnames}

    def call_sync(self, hook: str, **kwargs: Any) -> HookResults:
        """Call a start-up hook; a failure here is a configuration error and is raised."""
        out = HookResults()
        for impl in self._impls(hook):
            try:
                value = impl.function(**self._kwargs(impl, kwargs))
            except Exception as exc:
                raise PluginConfigError(f"plugin {impl.plugin_name}: {hook} failed: {exc}") from exc
            if inspect.isawaitable(value):
                raise PluginConfigError(f"plugin {impl.plugin_name}: hook {hook} must be sync")
            if value is not None:
                out.results.append((impl.plugin_name, value))
        return out

    async def call(
        self,
        hook: str,
        *,
        first_result: bool = False,
        only: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> HookResults:
        """Call a hook on every enabled plugin (or those in ``only``, in that order),
        one after another, isolating failures."""
        out = HookResults()
        for impl in self._impls(hook, only):
            try:
                value = await asyncio.wait_for(
                    _maybe_await(impl.function, self._kwargs(impl, kwargs)), self.timeout
                )
            except TimeoutError as exc:
                failure = f"timed out after {self.timeout:g}s"
                out.failures.append(PluginFailure(impl.plugin_name, hook, failure, exc))
                log.warning("plugin %s: %s %s", impl.plugin_name, hook, failure)
                continue
            except DomainError as exc:
                out.failures.append(PluginFailure(impl.plugin_name, hook, str(exc), exc))
                continue
            except Exception as exc:
                out.failures.append(
                    PluginFailure(impl.plugin_name, hook, f"{type(exc).__name__}: {exc}", exc)
                )
                log.exception("plugin %s failed in %s", impl.plugin_name, hook)
                continue
            if value is not None:
                out.results.append((impl.plugin_name, value))
                if first_result:
                    break
        return out

    def hook_implemented(self, hook: str) -> bool:
        return bool(self._impls(hook))

    def implementers(self, hook: str) -> list[str]:
        return [impl.plugin_name for impl in self._impls(hook)]


async def _maybe_await(function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    value = function(**kwargs)
    if inspect.isawaitable(value):
        value = await value
    return value
