"""pyannote.audio's speaker-diarization pipeline as a diarization engine, for users with model-hub access.

The pipeline's weights are gated on the Hugging Face hub (accept the model's terms, then set ``HF_TOKEN``)
or a local copy of them: ``diarization_model`` names either (default ``pyannote/speaker-diarization-3.1``).
pyannote.audio is not installed by default: ``pip install 'support-agent[pyannote]'``.
"""
from __future__ import annotations

import os

from agent.settings import Settings
from agent.types import AgentError, first_line

from .audio import SAMPLE_RATE
from .diarization import Diarizer, SpeakerTurn

DEFAULT_PIPELINE = "pyannote/speaker-diarization-3.1"


class PyannoteDiarizer(Diarizer):
    name = "pyannote"

    def __init__(self, settings: Settings):
        try:
            from pyannote.audio import Pipeline
        except ImportError:
            raise AgentError("the pyannote diarization engine needs pyannote.audio: "
                             "pip install 'support-agent[pyannote]'") from None
        except Exception as exc:  # installed but broken, e.g. a torchaudio built for another torch
            raise AgentError(f"pyannote.audio could not be imported ({type(exc).__name__}: "
                             f"{first_line(exc, 'no detail')}); it needs a torchaudio "
                             "matching the installed torch") from None
        model = settings.diarization_model or DEFAULT_PIPELINE
        try:
            self.pipeline = Pipeline.from_pretrained(model, token=os.environ.get("HF_TOKEN"))
        except Exception as exc:  # hub, file and version errors all come from different libraries
            self.pipeline, reason = None, f"{type(exc).__name__}: {first_line(exc)}"
        else:
            reason = "no pipeline returned"
        if self.pipeline is None:
            raise AgentError(f"pyannote pipeline '{model}' could not be loaded ({reason}); it needs model-hub "
                             "access with the model's terms accepted (HF_TOKEN) or a local copy "
                             "(setting 'diarization_model')")

    def turns(self, samples, speech, speakers):
        import torch

        waveform = {"waveform": torch.from_numpy(samples).reshape(1, -1), "sample_rate": SAMPLE_RATE}
        result = self.pipeline(waveform, max_speakers=speakers)
        annotation = getattr(result, "speaker_diarization", result)  # pyannote.audio 4 wraps the annotation
        ids: dict[str, int] = {}
        return [SpeakerTurn(round(turn.start, 2), round(turn.end, 2), ids.setdefault(who, len(ids)))
                for turn, _, who in annotation.itertracks(yield_label=True)]


Engine = PyannoteDiarizer  # the adapter channels.diarization.load_engine loads by name
