"""Strategy plug-ins are discovered through the ``bot.strategies`` entry-point group."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import logging
import sys
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from bot.engine.strategy import Strategy

log = logging.getLogger(__name__)

GROUP = "bot.strategies"
# The strategies this package ships, as registered in its own pyproject.toml. Used only when the installed
# metadata lacks them (an editable install made before a strategy was added): entry points always win.
SHIPPED = {
    "quote": "bot.strategies.quote:QuoteStrategy",
    "zscore": "bot.strategies.zscore:ZScoreStrategy",
    "manual": "bot.strategies.manual:ManualStrategy",
}


class UnknownStrategy(LookupError):
    pass


def available() -> dict[str, str]:
    """name -> "module:Class" of every strategy that can be loaded (entry points over the shipped table)."""
    return SHIPPED | {ep.name: ep.value for ep in entry_points(group=GROUP)}


def load_strategy_class(name: str) -> type[Strategy]:
    matches = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if matches:
        value, cls = matches[0].value, matches[0].load()
    elif name in SHIPPED:
        value = SHIPPED[name]
        module, _, attr = value.partition(":")
        log.warning("strategy %r is not in the installed entry points (stale install?): loading the shipped %s", name, value)
        cls = getattr(importlib.import_module(module), attr)
    else:
        raise UnknownStrategy(f"unknown strategy {name!r}; installed: {', '.join(sorted(available())) or 'none'}")
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise TypeError(f"entry point {name!r} ({value}) is not a bot.engine.strategy.Strategy subclass")
    return cls


def code_hash(cls: type) -> str:
    """SHA-256 of the source of the module that defines the strategy (spec 8.5)."""
    module = sys.modules[cls.__module__]
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        source = repr(cls)
    return hashlib.sha256(source.encode()).hexdigest()


def params_hash(params: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str, separators=(",", ":")).encode()).hexdigest()
