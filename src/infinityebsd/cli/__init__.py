"""The ``infinityebsd`` command line.

Each command lives in its own module and registers itself on :data:`main`. User errors
(:class:`~infinityebsd.errors.InputError`, unreadable files) print one line and exit with status 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import click

from ..errors import InputError


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except InputError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            name = exc.filename or ""
            click.echo(f"error: {name}: {exc.strerror or exc}; check the path", err=True)
            sys.exit(2)
        except MemoryError:
            click.echo("error: out of memory; try a smaller map or size", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="infinityebsd")
def main():
    """Large, statistically faithful EBSD maps: read, clean, measure, generate.

    Run 'infinityebsd COMMAND --help' for the options and an example of each command.
    """


def seed_option(f):
    return click.option("--seed", type=int, default=0, show_default=True,
                        help="Random seed; the same seed gives the same result.")(f)


# Command modules register themselves on `main` when imported (after it exists: they import it).
from . import analysis, evaluate, generate, learn, synth  # noqa: E402,F401
