"""audio: capture/playback pipeline settings; needs a sound device to run anything."""

from __future__ import annotations

from pathlib import Path

from dream.genome import Gene, gene
from dream.host import HostInfo

METRICS = ("xruns", "buffer_underruns")


def genes(host: HostInfo) -> tuple[Gene, ...]:
    """The audio genome (pipeline settings move through the workload, none is a host file)."""
    return (
        gene("sample_rate_idx", "", 1, host, workload=True, choices=("44100", "48000", "96000")),
        gene("buffer_size_log2", "6..12", 10, host, workload=True),
        gene("period_size_log2", "5..10", 8, host, workload=True),
        gene("quantum", "0..8192/1024", 1024, host, workload=True),
        gene("resampler_idx", "0..3", 0, host, workload=True),
        gene("thread_priority", "0..99/10", 0, host, workload=True),
        gene("n_periods", "2..4", 2, host, workload=True),
        gene("clock_source", "0..3", 0, host, workload=True),
        gene("echo_cancel", "0..1", 0, host, workload=True),
        gene("tts_mute_capture", "0..1", 1, host, workload=True),
    )


def unavailable(host: HostInfo) -> str | None:
    """Why audio trials cannot run here (None when they can)."""
    if not list(Path("/dev/snd").glob("pcm*")):
        return "no audio device (/dev/snd has no PCM devices)"
    return "no audio workload ships with this repository"
