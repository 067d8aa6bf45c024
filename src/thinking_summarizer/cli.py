"""Project commands. `run` is Kedro's own `kedro run`, except that a run refused for what the user can fix (a
`UserFacingError`: a setting, a source file, a server's refusal) ends with that message alone; `--verbose` adds
the traceback."""

from __future__ import annotations

import logging
from typing import Any

import click
from kedro.framework.cli.project import run as kedro_run

from thinking_summarizer.errors import UserFacingError

log = logging.getLogger(__name__)


class RunRefused(click.ClickException):
    """Printed by click as `Error: <message>`, exit status 1."""


def _run(verbose: bool, **options: Any) -> Any:
    try:
        return kedro_run.callback(**options)
    except UserFacingError as error:
        if verbose:
            raise
        log.debug("run refused", exc_info=True)
        raise RunRefused(f"{error}\n(kedro run --verbose shows where it was raised)") from None


@click.group(name="thinking_summarizer")
def cli() -> None:
    """thinking-summarizer's project commands."""


cli.add_command(click.Command(
    name="run", callback=_run, help=kedro_run.help, short_help=kedro_run.short_help,
    params=[*kedro_run.params, click.Option(["--verbose"], is_flag=True,
                                            help="Show the traceback of an error the run was refused for.")],
))
