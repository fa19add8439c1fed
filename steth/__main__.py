"""`python -m steth`: the `steth` CLI, for hosts where the entry point script is not on PATH."""

from steth.controller.cli import main

if __name__ == "__main__":
    main()
