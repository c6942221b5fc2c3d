"""`python -m dream ...`: see dream.cli."""

from dream.cli import cli

cli()
