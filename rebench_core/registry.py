"""Loads plugins from the ``rebench`` entry-point group and collects what they register.

pluggy's own ``load_setuptools_entrypoints`` loads every plugin eagerly and lets one broken plugin
take the host down; this loader isolates each plugin's import, reports failures by name and goes
on (``REBENCH_STRICT_PLUGINS=1`` makes them fatal), honours ``REBENCH_DISABLE_PLUGINS=a,b``, and
runs ``check_pending()`` so a misspelled hook is an error rather than silence.
"""

from __future__ import annotations

import datetime as dt
import difflib
import fnmatch
import importlib
import os
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Callable

import pluggy

from . import hookspecs
from .prices import PriceBook, PriceRow

if TYPE_CHECKING:  # imported when a model is built: listing and --help never need them
    from .model import Model
    from .retry import RetryPolicy
    from .types import Completion

ENTRY_POINT_GROUP = "rebench"


class PluginError(RuntimeError):
    """A plugin failed to load or registered something invalid."""


class UnknownNameError(LookupError):
    """A name that no plugin registered; the message lists what exists."""


class UnusableModelError(RuntimeError):
    """A model this machine cannot run (its package or weights are missing); says what to install."""


@dataclass
class Registered:
    """One registered thing: its name, the factory (object or "module:attr"), and its plugin."""

    name: str
    factory: Any
    plugin: str
    claims: tuple[str, ...] = ()
    kind: str = ""
    requires: str | None = None  # the pip requirement that provides its imports, for the error

    def load(self) -> Callable[..., Any]:
        if isinstance(self.factory, str):
            module_name, _, attr = self.factory.partition(":")
            try:
                obj = importlib.import_module(module_name)
                for part in attr.split("."):
                    obj = getattr(obj, part)
            except ModuleNotFoundError as exc:
                if exc.name and not module_name.startswith(exc.name):  # a dependency, not the plugin's own module
                    hint = f"pip install '{self.requires}'" if self.requires else "install its plugin's dependencies"
                    raise PluginError(f"{self.kind} {self.name!r} (plugin {self.plugin!r}) needs the Python package "
                                      f"{exc.name!r}, which is not installed: {hint}") from None
                raise PluginError(f"plugin {self.plugin!r} registered {self.name!r} as {self.factory!r}, "
                                  f"which failed to import: {type(exc).__name__}: {exc}") from exc
            except Exception as exc:  # the message must name the plugin whatever broke
                raise PluginError(f"plugin {self.plugin!r} registered {self.name!r} as {self.factory!r}, "
                                  f"which failed to import: {type(exc).__name__}: {exc}") from exc
            self.factory = obj
        return self.factory


@dataclass
class PluginInfo:
    name: str
    distribution: str | None
    version: str | None
    module: str
    registered: list[str] = field(default_factory=list)
    price_rows: int = 0
    error: str | None = None


class Registry:
    """Everything the loaded plugins registered, by kind."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self.environments: dict[str, Registered] = {}
        self.scaffolds: dict[str, Registered] = {}
        self.backends: dict[str, Registered] = {}
        self.prices = PriceBook()
        self.plugins: dict[str, PluginInfo] = {}

    # -- collection -----------------------------------------------------------------------------
    def collect(self) -> None:
        """Call every plugin's registration hooks (pluggy calls them, one plugin at a time, so what
        each registers is attributed to it)."""
        tables = {"rebench_register_environments": ("environment", self.environments),
                  "rebench_register_scaffolds": ("scaffold", self.scaffolds),
                  "rebench_register_model_backends": ("model backend", self.backends)}
        plugins = self.pm.list_name_plugin()  # in load order, so "registered twice" names them alike
        for name, plugin in plugins:
            others = [p for _, p in plugins if p is not plugin]
            for hook, (kind, table) in tables.items():
                self.pm.subset_hook_caller(hook, others)(register=self._registrar(kind, table, name))
            self.pm.subset_hook_caller("rebench_register_prices", others)(register=self._price_registrar(name))

    def _registrar(self, kind: str, table: dict[str, Registered], plugin: str) -> Callable[..., None]:
        def register(name: str, factory: Any, claims: tuple[str, ...] | list[str] = (),
                     requires: str | None = None) -> None:
            if not isinstance(name, str) or not name or "/" in name or ":" in name:
                raise PluginError(f"plugin {plugin!r} registered a {kind} with an invalid name {name!r} "
                                  f"(use a non-empty name without '/' or ':')")
            if name in table:
                raise PluginError(f"{kind} {name!r} is registered twice: by plugin {table[name].plugin!r} "
                                  f"and by plugin {plugin!r}; disable one with REBENCH_DISABLE_PLUGINS")
            table[name] = Registered(name, factory, plugin, tuple(claims), kind, requires)
            if plugin in self.plugins:
                self.plugins[plugin].registered.append(f"{kind} {name}")
        return register

    def _price_registrar(self, plugin: str) -> Callable[[PriceRow], None]:
        def register(row: PriceRow) -> None:
            try:
                self.prices.add(row)
            except (TypeError, ValueError) as exc:
                raise PluginError(f"plugin {plugin!r}: {exc}") from exc
            if plugin in self.plugins:
                self.plugins[plugin].price_rows += 1
        return register

    # -- lookup ---------------------------------------------------------------------------------
    def environment(self, name: str) -> Registered:
        return _lookup(self.environments, name, "environment", "--env")

    def scaffold(self, name: str) -> Registered:
        return _lookup(self.scaffolds, name, "scaffold", "--scaffold")

    def model(self, spec: str, settings: dict[str, Any] | None = None, retry: RetryPolicy | None = None,
              on_call: Callable[[Completion], None] | None = None) -> Model:
        """The model `spec` names (``provider/model`` or a bare name one provider claims), built
        with `settings`, priced with the row in force today (or the backend's fallback), retrying
        with `retry`. The one way anything in rebench gets a model."""
        from .model import Model
        from .retry import RetryPolicy

        registered, name = self.resolve_model(spec)
        backend_cls = registered.load()
        problems = getattr(backend_cls, "problems", lambda model: [])(name)
        if problems:
            raise UnusableModelError(f"--model {spec}: " + "; ".join(problems))
        backend = backend_cls(model=name, **(settings or {}))
        price = self.prices.lookup(*backend.price_key, dt.date.today()) or backend.fallback_price()
        return Model(backend, registered.name, price, retry or RetryPolicy(), on_call)

    def resolve_model(self, spec: str) -> tuple[Registered, str]:
        """Map ``provider/model`` or a bare model name onto (backend, model name)."""
        if "/" in spec:
            provider, _, model = spec.partition("/")
            if provider in self.backends:
                if not model:
                    raise UnknownNameError(f"--model {spec!r} names provider {provider!r} but no model")
                return self.backends[provider], model
        candidates = sorted({name for name, reg in self.backends.items()
                             if any(fnmatch.fnmatchcase(spec, pat) for pat in reg.claims)}
                            | {row.provider for row in self.prices.rows
                               if row.model == spec and row.provider in self.backends})
        if len(candidates) == 1:
            return self.backends[candidates[0]], spec
        if len(candidates) > 1:
            raise UnknownNameError(f"model {spec!r} is claimed by several providers: {', '.join(candidates)}; "
                                   f"write it as one of " + ", ".join(f"{c}/{spec}" for c in candidates))
        providers = ", ".join(sorted(self.backends)) or "none installed"
        raise UnknownNameError(f"no model backend claims {spec!r}. Write it as PROVIDER/MODEL; "
                               f"installed providers: {providers} (see `rebench-list models`)")


def _lookup(table: dict[str, Registered], name: str, kind: str, flag: str) -> Registered:
    if name in table:
        return table[name]
    close = [n for n in table if n.startswith(name[:3])] if name else []
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UnknownNameError(f"unknown {kind} {name!r} for {flag}.{hint} Installed: "
                           f"{', '.join(sorted(table)) or 'none'} (see `rebench-list`)")


def _env_list(name: str) -> set[str]:
    return {x.strip() for x in os.environ.get(name, "").split(",") if x.strip()}


def load_plugins(extra_plugins: list[tuple[str, Any]] | None = None) -> Registry:
    """Load every plugin of the ``rebench`` group (plus `extra_plugins`, (name, module) pairs used
    by tests) and collect their registrations."""
    strict = os.environ.get("REBENCH_STRICT_PLUGINS", "") not in ("", "0")
    disabled = _env_list("REBENCH_DISABLE_PLUGINS")
    pm = pluggy.PluginManager("rebench")
    pm.add_hookspecs(hookspecs)
    registry = Registry(pm)

    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        info = PluginInfo(ep.name, dist.name if dist else None, dist.version if dist else None, ep.value)
        if ep.name in registry.plugins:
            raise PluginError(f"two installed plugins are named {ep.name!r}: {registry.plugins[ep.name].distribution} "
                              f"and {info.distribution}; uninstall one or disable it with REBENCH_DISABLE_PLUGINS")
        registry.plugins[ep.name] = info
        if ep.name in disabled:
            info.error = "disabled by REBENCH_DISABLE_PLUGINS"
            continue
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as exc:
            info.error = f"{type(exc).__name__}: {exc}"
            if strict:
                raise PluginError(f"plugin {ep.name!r} ({ep.value}) failed to load: {info.error}") from exc
    for name, module in extra_plugins or []:
        registry.plugins[name] = PluginInfo(name, None, None, getattr(module, "__name__", repr(module)))
        pm.register(module, name=name)

    _drop_plugins_with_unknown_hooks(pm, registry, strict)
    registry.collect()
    return registry


def _drop_plugins_with_unknown_hooks(pm: pluggy.PluginManager, registry: Registry, strict: bool) -> None:
    """A plugin implementing a hook that does not exist (a misspelling) is reported by name and
    unloaded; the others keep working, so `rebench-list plugins` can show what is wrong."""
    while True:
        try:
            pm.check_pending()
            return
        except pluggy.PluginValidationError as exc:
            name = pm.get_name(exc.plugin)
            hooks = sorted(h for h in dir(hookspecs) if h.startswith("rebench_"))
            bad = [h for h in dir(exc.plugin) if h.startswith("rebench_") and h not in hooks]
            close = {h: difflib.get_close_matches(h, hooks, n=1) for h in bad}
            detail = ", ".join(f"{h!r}" + (f" (did you mean {c[0]!r}?)" if c else "") for h, c in close.items())
            message = f"implements hooks that do not exist: {detail or exc}"
            if strict:
                raise PluginError(f"plugin {name!r} {message}") from exc
            pm.unregister(exc.plugin)
            if name in registry.plugins:
                registry.plugins[name].error = message
