"""Channel adapters: audio and email in, speech and drafts out. Engines are chosen by settings.

An engine family (diarization, speech out) keeps its base class in one module and each engine in a
module of its own, ``channels/<prefix><name>.py``, whose ``Engine`` is the adapter: adding an engine
touches one file, and an engine's packages (torch, Coqui) load only when it is chosen.
"""
import importlib
import pkgutil

from agent.types import AgentError


def engine_class(engines: dict[str, type], name: str, kind: str) -> type:
    """The adapter class registered as ``name``, or a one-line error listing the ones there are."""
    try:
        return engines[name]
    except KeyError:
        raise AgentError(f"unknown {kind} engine '{name}' (available: {', '.join(engines)})") from None


def adapter_names(prefix: str, default: str) -> list[str]:
    """The engines of the ``channels/<prefix><name>.py`` modules, ``default`` first; none is imported."""
    names = [m.name[len(prefix):] for m in pkgutil.iter_modules(__path__) if m.name.startswith(prefix)]
    return sorted(names, key=lambda name: (name != default, name))


def adapter_name(prefix: str, name: str, kind: str, default: str, built_in: tuple[str, ...] = ()) -> str:
    """``name`` when it is one of the ``built_in`` engines or has a ``channels/<prefix><name>.py`` module (none
    is imported), else a one-line error listing them all, ``default`` first."""
    return engine_class({n: n for n in [*built_in, *adapter_names(prefix, default)]}, name, kind)


def adapter(prefix: str, name: str) -> type:
    """The ``Engine`` of ``channels/<prefix><name>.py``, imported now (the module imports its family's base)."""
    return importlib.import_module(f"{__name__}.{prefix}{name}").Engine
