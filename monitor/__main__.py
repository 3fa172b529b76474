"""`python -m monitor` is the `backlash` command."""

from monitor.cli import main

main()
