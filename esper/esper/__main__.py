"""`python -m esper ...`."""

from esper.cli import main

main()
