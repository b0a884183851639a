"""Strategy plug-ins are discovered through the ``bot.strategies`` entry-point group."""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from bot.engine.strategy import Strategy

GROUP = "bot.strategies"


class UnknownStrategy(LookupError):
    pass


def available() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def load_strategy_class(name: str) -> type[Strategy]:
    matches = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not matches:
        raise UnknownStrategy(f"unknown strategy {name!r}; installed: {', '.join(sorted(available())) or 'none'}")
    cls = matches[0].load()
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise TypeError(f"entry point {name!r} ({matches[0].value}) is not a bot.engine.strategy.Strategy subclass")
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
