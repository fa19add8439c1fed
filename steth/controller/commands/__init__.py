"""One module per `steth` subcommand; each defines `command`."""
