"""`python -m avalanche_llm <subcommand> ...`."""

from avalanche_llm.cli import cli

if __name__ == "__main__":
    cli()
