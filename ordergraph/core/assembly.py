"""The service assembled from its settings: plugins, the status graph, the stages and the
jobs, checked before anything is connected.

The stages are registered like plugins, by name (``STAGES``): their jobs, periodic work,
reactions and vetoes come through the same hooks a plugin uses, so the kernel imports
none of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ordergraph.core.arq_jobs import Carrier
from ordergraph.core.dispatch import core_jobs
from ordergraph.core.events import InProcessBus, RedisBus, channel_for
from ordergraph.core.jobs import JobRunner
from ordergraph.core.periodic import PeriodicLoop
from ordergraph.core.plugins import PluginConfigError, PluginManager
from ordergraph.core.runtime import Runtime
from ordergraph.core.settings import Settings
from ordergraph.core.statusgraph import StatusGraph, default_graph

# The core's stages, registered in this order (pluggy calls the last registered first).
STAGES = {
    "review": "ordergraph.stages.review:Stage",
    "fulfilment": "ordergraph.stages.fulfilment:Stage",
    "settlement": "ordergraph.stages.settlement:Stage",
    "alerts": "ordergraph.stages.tracking.alerts:Stage",
    "tracking": "ordergraph.stages.tracking.polling:Stage",
    "analytics": "ordergraph.stages.analytics:Stage",
}


def build_graph(plugins: PluginManager) -> StatusGraph:
    graph = default_graph()
    plugins.call_sync("extend_status_graph", graph=graph)
    graph.validate()
    return graph


def load_plugins(settings: Settings, installed: Mapping[str, Any] | None = None) -> PluginManager:
    if installed is None:
        return PluginManager.from_entry_points(
            settings.plugins, timeout=settings.plugin_timeout_seconds
        )
    return PluginManager(installed, settings.plugins, timeout=settings.plugin_timeout_seconds)


def build(settings: Settings, installed_plugins: Mapping[str, Any] | None = None) -> Runtime:
    """Load and validate plugins, the status graph, the stages and the jobs; nothing is
    connected yet.

    ``installed_plugins`` replaces entry-point discovery (name -> plugin module).
    Raises ``PluginConfigError`` or ``StatusGraphError`` naming what is wrong.
    """
    plugins = load_plugins(settings, installed_plugins)
    bus = (
        RedisBus(settings.redis_url, channel_for(settings.database_url))
        if settings.redis_url
        else InProcessBus()
    )
    rt = Runtime(
        settings=settings,
        plugins=plugins,
        graph=build_graph(plugins),
        bus=bus,
        make_runner=JobRunner,
        make_periodic=PeriodicLoop,
        make_carrier=lambda rt: Carrier(rt.settings.redis_url or "", rt.settings.database_url),
    )
    for name, target in STAGES.items():
        module, _, factory = target.partition(":")
        plugins.add_internal(name, getattr(importlib.import_module(module), factory)(rt))
    rt.job_handlers = core_jobs(rt)
    for plugin, jobs in plugins.call_sync("register_jobs", runtime=rt).results:
        for name, job in jobs.items():
            if name in rt.job_handlers:
                raise PluginConfigError(f"plugin {plugin}: job {name!r} is already registered")
            rt.job_handlers[name] = job
    return rt
