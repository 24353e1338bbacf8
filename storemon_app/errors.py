"""The failure every command shows as one line (exit status 1), in a module of its own so the
command modules (cli, datasets, bench) share it without importing one another."""


class CommandError(Exception):
    """A failure to show the user as one line, with exit status 1."""
