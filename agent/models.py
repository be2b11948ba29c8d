"""Old name of ``agent.model_versions`` (model versions, the promotion pointer, rollback), kept so
that code written against it still imports; new code imports ``agent.model_versions``."""
from .model_versions import *  # noqa: F401,F403
from .model_versions import KINDS, POINTER, SHIPPED, VERSION_FILE  # noqa: F401
