"""Old name of ``agent.packaged_weights`` (model settings turned into local files, the packaged
weights first), kept so that code written against it still imports; new code imports
``agent.packaged_weights``."""
from .packaged_weights import *  # noqa: F401,F403
from .packaged_weights import JOE_VOICE_NAMES, MINILM_NAMES, PACKAGED_WHISPER  # noqa: F401
