"""Coqui TTS (the maintained ``coqui-tts`` fork) behind the ``tts.Speaker`` interface.

A voice is a Coqui model name (``tts_models/en/ljspeech/vits``, ``tts_models/multilingual/multi-dataset/
xtts_v2``; Coqui downloads it when online) or a local checkpoint: a ``.pth`` with ``config.json`` beside
it, or their folder, as Coqui's trainer writes them. Both are loaded by Coqui's own ``TTS`` API, the
way Coqui loads a downloaded model. Cloning models (XTTS v2) speak in the voice of a reference
recording, which is turned into Coqui's voice file once, at load.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import sys
from pathlib import Path

import numpy as np

from agent import store
from agent.settings import Settings
from agent.types import AgentError

from . import speech_text
from .tts import Speaker

# A model name as Coqui writes one: TYPE/LANGUAGE/DATASET/MODEL.
_MODEL_NAME = re.compile(r"[a-z_]+/[^/\s]+/[^/\s]+/[^/\s]+")
# Coqui's languages that need a region ("zh" is written "zh-cn" in XTTS's list).
_LANGUAGE_ALIASES = {"zh": "zh-cn"}


class CoquiEngine(Speaker):
    """``tts_voice`` is ``MODEL`` or ``MODEL:SPEAKER`` (SPEAKER: a voice of a multi-speaker model, or one of
    XTTS's built-in voices); ``tts_speaker_wav`` a reference recording for a cloning model;
    ``tts_language`` (else ``language``) the language of a multilingual model."""

    name = "coqui"

    def __init__(self, settings: Settings, deterministic: bool = False):
        tts_class = _import_coqui()
        # Coqui logs tracebacks of its own before raising; its errors reach the user as one line instead.
        for name in ("TTS", "trainer"):
            logger = logging.getLogger(name)
            logger.handlers[:], logger.propagate = [logging.NullHandler()], False
        model, speaker = coqui_voice(settings.tts_voice)
        reference = Path(settings.tts_speaker_wav).expanduser() if settings.tts_speaker_wav else None
        if reference and not reference.is_file():  # checked before a model loads for seconds
            raise AgentError(f"speaker reference recording not found: {reference}")
        # Coqui prints prompts and notices on stdout, which carries the CLI's JSON.
        with contextlib.redirect_stdout(sys.stderr):
            self.tts = _load(tts_class, model)
        self.model = model
        self.language = self._language(settings.tts_language or settings.language or "en")
        self.speaker, self.voice_dir = self._voice(speaker, reference, Path(settings.cache_dir))
        self.sample_rate = int(self.tts.synthesizer.output_sample_rate)
        self.text_options = speech_text.SpeechTextOptions(language=self.language or "en")
        self.deterministic = deterministic

    def _language(self, language: str) -> str | None:
        if not self.tts.is_multi_lingual:
            return None
        known = list(self.tts.languages or [])
        language = _LANGUAGE_ALIASES.get(language, language) if language not in known else language
        if known and language not in known:
            raise AgentError(f"Coqui model '{self.model}' does not speak '{language}' "
                             f"(languages: {', '.join(known)}; setting 'tts_language')")
        return language

    def _voice(self, speaker: str | None, reference: Path | None, cache_dir: Path) -> tuple[str | None, Path | None]:
        """(the speaker to ask Coqui for, the folder of cloned voices) after checking both."""
        config = self.tts.synthesizer.tts_model.config
        clones = bool(config.supports_cloning)
        speakers = [] if clones and reference else list(self.tts.speakers or [])
        if reference:
            if not clones:
                raise AgentError(f"Coqui model '{self.model}' does not clone voices, so it takes no speaker "
                                 f"reference (tts_speaker_wav); use XTTS v2")
            return self._clone(reference, cache_dir / "coqui-voices")
        if speaker and speaker not in speakers:
            raise AgentError(f"Coqui model '{self.model}' has no speaker '{speaker}' "
                             f"({'speakers: ' + ', '.join(speakers[:10]) if speakers else 'it has one voice'})")
        if clones and not (speaker or speakers):
            raise AgentError(f"Coqui model '{self.model}' speaks in a cloned voice: give a speaker reference "
                             f"recording (--speaker-wav FILE, setting tts_speaker_wav)")
        return speaker or (speakers[0] if speakers else None), None

    def _clone(self, reference: Path, voice_dir: Path) -> tuple[str, Path]:
        """Coqui's voice file for ``reference``, made once per model and recording (Coqui caches it there)."""
        voice_id = hashlib.sha256(self.model.encode() + reference.read_bytes()).hexdigest()[:16]
        if not (voice_dir / f"{voice_id}.pth").is_file():
            try:
                self.tts.synthesizer.tts_model.clone_voice(str(reference), voice_id, voice_dir)
            except Exception as exc:  # torchaudio's decoder errors for a file that is not audio
                raise AgentError(f"speaker reference {reference} could not be used "
                                 f"({type(exc).__name__}: {_first_line(exc)})") from None
        return voice_id, voice_dir

    def _speak(self, sentence: str) -> np.ndarray:
        import torch

        if self.deterministic:
            torch.manual_seed(0)  # VITS and XTTS sample from torch's generator
        extra = {"voice_dir": self.voice_dir} if self.voice_dir else {}
        with torch.inference_mode():
            wav = self.tts.tts(sentence, speaker=self.speaker, language=self.language, split_sentences=False,
                               **extra)
        wav = np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0)
        # Coqui pads every sentence with silence of its own; the pause between sentences is Speaker's.
        from TTS.utils.synthesizer import PAD_SILENCE_SAMPLES

        padded = len(wav) > PAD_SILENCE_SAMPLES and not wav[-PAD_SILENCE_SAMPLES:].any()
        return wav[:-PAD_SILENCE_SAMPLES] if padded else wav


def _load(tts_class, model: str):
    """Coqui's ``TTS`` for a checkpoint path or a model name, or a one-line error."""
    path = Path(model).expanduser()
    if not path.exists() and not _MODEL_NAME.fullmatch(model):
        raise AgentError(f"Coqui model '{model}' not found: neither a checkpoint path nor a Coqui model name "
                         f"such as tts_models/en/ljspeech/vits ('tts --list_models' lists them)")
    try:
        if path.exists():
            checkpoint, config = coqui_checkpoint(path)
            return tts_class(model_path=str(checkpoint), config_path=str(config), progress_bar=False)
        if "/fairseq/" not in model and model not in tts_class.list_models():
            raise AgentError(f"unknown Coqui model '{model}' ('tts --list_models' lists them)")
        return tts_class(model_name=model, progress_bar=False)
    except AgentError:
        raise
    except EOFError:  # Coqui asks on stdin to agree to a model's licence (XTTS: the CPML)
        raise AgentError(f"Coqui model '{model}' needs its licence agreed first: run it once in a terminal, "
                         f"or set COQUI_TOS_AGREED=1") from None
    except Exception as exc:  # Coqui raises anything from KeyError to OSError for a bad or unreachable model
        from requests import ConnectionError as NoConnection

        if isinstance(exc, NoConnection):
            raise AgentError(f"Coqui model '{model}' could not be downloaded: no connection to its host (a model "
                             f"name needs the internet once; a checkpoint folder does not)") from None
        raise AgentError(f"Coqui model '{model}' could not be loaded ({type(exc).__name__}: "
                         f"{_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] if text else "no detail"


def _import_coqui():
    try:
        import torchaudio  # noqa: F401  (imported by TTS; checked first, for the message)
        from TTS.api import TTS
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing == "torchaudio":
            raise AgentError("the coqui engine needs torchaudio, which this install lacks (the small install "
                             "has none): run scripts/setup.sh without TORCH_BUILD=cpu") from None
        if missing == "TTS":
            raise AgentError("the coqui engine needs Coqui TTS, which is not installed: "
                             "pip install 'support-agent[coqui]' (see README, Speech out)") from None
        raise AgentError(f"Coqui TTS is installed but cannot be imported: it needs the module '{exc.name}' "
                         f"(pip install 'support-agent[coqui]'; see README, Speech out)") from None
    except (ImportError, OSError) as exc:  # a torchaudio built for another torch (the CPU wheel of 2.13)
        import torch

        raise AgentError(f"the coqui engine needs torchaudio, and the installed one cannot load beside torch "
                         f"{torch.__version__} ({type(exc).__name__}: {_first_line(exc)[:120]}); "
                         f"run scripts/setup.sh without TORCH_BUILD=cpu") from None
    return TTS


def coqui_voice(voice: str) -> tuple[str, str | None]:
    """(model, speaker) of ``MODEL[:SPEAKER]``; a path is taken whole, even with a colon in it."""
    if voice in store.JOE_VOICE_NAMES:
        raise AgentError("the coqui engine needs a Coqui model: --voice MODEL[:SPEAKER], e.g. "
                         "tts_models/en/vctk/vits:p225, or the path of a checkpoint")
    if Path(voice).expanduser().exists() or ":" not in voice:
        return voice, None
    model, _, speaker = voice.rpartition(":")
    return model, speaker or None


def coqui_checkpoint(path: Path) -> tuple[Path, Path]:
    """(checkpoint, config.json) of a checkpoint file or of the directory that holds one."""
    folder = path if path.is_dir() else path.parent
    config = folder / "config.json"
    checkpoints = [path] if path.is_file() else \
        sorted(folder.glob("*.pth"), key=lambda p: (p.name not in ("model.pth", "best_model.pth"), p.name))
    if not checkpoints:
        raise AgentError(f"Coqui checkpoint {path}: no .pth file there")
    if not config.is_file():
        raise AgentError(f"Coqui checkpoint {checkpoints[0]} has no config.json beside it")
    return checkpoints[0], config


Engine = CoquiEngine  # the adapter channels.tts.load_engine loads by name
