"""A Coqui VITS checkpoint with random weights, written as Coqui's trainer writes one.

    python bench/random_vits.py OUT_DIR [--small] [--seed 0]

OUT_DIR gets ``config.json`` and ``model.pth``, the files of a trained or downloaded Coqui VITS voice,
so ``support-agent speak --engine coqui --voice OUT_DIR`` loads it as it loads a real one. The
architecture is the released LJSpeech VITS (``tts_models/en/ljspeech/vits``: Coqui's VITS defaults,
espeak phonemes, 22.05 kHz); ``--small`` shrinks every layer for fast tests. The voice says nothing
intelligible: it is for measuring speed and for testing the loading and synthesis path offline.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Layer sizes a few times smaller than the released voice's: the same code paths in a fraction of the time.
SMALL = dict(hidden_channels=32, hidden_channels_ffn_text_encoder=64, num_layers_text_encoder=2,
             num_layers_posterior_encoder=2, num_layers_flow=1, upsample_initial_channel_decoder=64,
             resblock_kernel_sizes_decoder=[3], resblock_dilation_sizes_decoder=[[1, 3, 5]])


def write_random_vits(folder: str | Path, small: bool = False, seed: int = 0) -> Path:
    """Write ``config.json`` and ``model.pth`` into ``folder`` (created); returns the folder."""
    import torch
    from trainer.io import save_model
    from TTS.config.shared_configs import BaseAudioConfig
    from TTS.tts.configs.vits_config import VitsArgs, VitsConfig
    from TTS.tts.models.vits import Vits

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # As Coqui's LJSpeech VITS recipe configures it: English cleaners and espeak phonemes.
    # No discriminator: it only trains, and would make the file several times larger.
    config = VitsConfig(model_args=VitsArgs(init_discriminator=False, **(SMALL if small else {})),
                        audio=BaseAudioConfig(sample_rate=22050, win_length=1024, hop_length=256, num_mels=80),
                        text_cleaner="english_cleaners", use_phonemes=True, phonemizer="espeak",
                        phoneme_language="en-us", run_name="random_vits")
    torch.manual_seed(seed)
    model = Vits(config)
    config.save_json(str(folder / "config.json"))
    save_model(config, model, folder / "model.pth", current_step=0, epoch=0)
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir")
    p.add_argument("--small", action="store_true", help="every layer shrunk, for fast tests")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    print(write_random_vits(args.out_dir, args.small, args.seed))


if __name__ == "__main__":
    sys.exit(main())
