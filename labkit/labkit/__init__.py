"""labkit: the experiment kernel shared by every system in this repository."""

__version__ = "0.1.0"
