"""Channel adapters: audio and email in, speech and drafts out. Engines are chosen by settings."""
from agent.types import AgentError


def engine_class(engines: dict[str, type], name: str, kind: str) -> type:
    """The adapter class registered as ``name``, or a one-line error listing the ones there are."""
    try:
        return engines[name]
    except KeyError:
        raise AgentError(f"unknown {kind} engine '{name}' (available: {', '.join(engines)})") from None
