"""asr_tts: speech recognition and synthesis settings; needs local ASR/TTS models and an audio device."""

from __future__ import annotations

from pathlib import Path

from dream.genome import Gene, gene
from dream.host import HostInfo

METRICS = ("recognition_failures", "synthesis_failures")


def genes(host: HostInfo) -> tuple[Gene, ...]:
    """The asr_tts genome (pipeline settings move through the workload)."""
    specs = [
        ("asr_model_size", "0..3", 1),
        ("asr_beam_width", "1..10", 5),
        ("asr_vad_threshold", "0.01..0.2/0.01", 0.05),
        ("asr_vad_min_speech_ms", "100..500/50", 250),
        ("asr_vad_max_silence_ms", "500..3000/250", 1000),
        ("asr_chunk_size_ms", "100..1000/100", 500),
        ("asr_denoiser_strength", "0..1/0.1", 0.5),
        ("tts_speaker_id", "0..5", 0),
        ("tts_speed", "0.5..2/0.1", 1.0),
        ("tts_pitch", "0.5..2/0.1", 1.0),
        ("tts_energy", "0.5..2/0.1", 1.0),
        ("batch_size", "1..16", 1),
        ("quantization", "0..2", 0),
        ("cache_size_mb", "0..512/64", 128),
        ("gpu_enabled", "0..1", 0),
    ]
    return tuple(gene(n, s, d, host, workload=True) for n, s, d in specs)


def unavailable(host: HostInfo) -> str | None:
    """Why asr_tts trials cannot run here (None when they can)."""
    if not list(Path("/dev/snd").glob("pcm*")):
        return "no audio device (/dev/snd has no PCM devices) and no local ASR/TTS models"
    return "no ASR/TTS workload or models ship with this repository"
