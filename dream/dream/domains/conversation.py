"""conversation: voice-persona settings of a spoken assistant; needs its LLM, TTS and an audio device."""

from __future__ import annotations

from pathlib import Path

from dream.genome import Gene, gene
from dream.host import HostInfo

METRICS = ("cpu_temp_c", "gpu_temp_c")


def genes(host: HostInfo) -> tuple[Gene, ...]:
    """The conversation genome (persona settings move through the workload)."""
    specs = [
        ("speaking_rate", "0.8..1.3/0.05", 1.0),
        ("pitch_variance", "0.5..2/0.1", 1.0),
        ("pause_duration", "0.5..2/0.1", 1.0),
        ("emphasis_strength", "0..2/0.1", 1.0),
        ("phoneme_precision", "0.5..1/0.05", 0.8),
        ("consonant_strength", "0.7..1.3/0.05", 1.0),
        ("vowel_length", "0.8..1.2/0.05", 1.0),
        ("tone_sharpness", "0.5..1.5/0.1", 1.0),
        ("monotone_factor", "0..0.5/0.05", 0.0),
        ("sarcasm_indicator", "0..1/0.1", 0.0),
        ("dry_wit_preference", "0..1/0.1", 0.5),
        ("technical_jargon", "0..1/0.1", 0.5),
        ("brevity_score", "0..1/0.1", 0.5),
    ]
    return tuple(gene(n, s, d, host, workload=True) for n, s, d in specs)


def unavailable(host: HostInfo) -> str | None:
    """Why conversation trials cannot run here (None when they can)."""
    if not list(Path("/dev/snd").glob("pcm*")):
        return "no audio device (/dev/snd has no PCM devices) and no local LLM/TTS models"
    return "no conversation workload or models ship with this repository"
