"""``flotilla backup`` and ``flotilla restore``: consistent snapshots of the store."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from flotilla.cli.admin import _DATA_DIR_HELP, default_data_dir
from flotilla.cli.output import note
from flotilla.cli.session import CliError


def _progress(verb: str) -> Callable[[int, int], None] | None:
    """A progress line on stderr (a terminal only) for stores of many pages."""
    if not sys.stderr.isatty():
        return None
    state = {"shown": -1}

    def show(done: int, total: int) -> None:
        percent = 100 * done // max(total, 1)
        if percent != state["shown"]:
            state["shown"] = percent
            sys.stderr.write(f"\r{verb} {percent:3d}% ({done}/{total} pages)")
            if done >= total:
                sys.stderr.write("\n")
            sys.stderr.flush()

    return show


@click.command(epilog="""\b
Examples:
  flotilla backup ./flotilla-2026-12-03.db                 # while the server runs
  flotilla backup /backups/today.db --data-dir /var/lib/flotilla
""")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help=_DATA_DIR_HELP)
def backup(file: Path, data_dir: Path | None) -> None:
    """Write a consistent snapshot of the store to FILE (mode 0600).

    Safe while the API server runs: the snapshot is one committed state with every
    revision, so a restore resumes exactly there. Interrupting it leaves the store and
    any earlier FILE untouched."""
    from flotilla.store.base import StoreError
    from flotilla.store.sqlite.backup import backup as take

    data_dir = data_dir or default_data_dir()
    try:
        snap = take(data_dir, file, _progress("backing up"))
    except (StoreError, OSError) as exc:
        raise CliError(f"backup failed: {exc}") from None
    note(f"backed up {snap.objects} object(s) at revision {snap.revision} to {snap.path} "
         f"({snap.bytes} bytes)")


@click.command(epilog="""\b
Examples:
  flotilla restore ./flotilla-2026-12-03.db                # server stopped first
  flotilla restore /backups/today.db --data-dir /var/lib/flotilla
""")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help=_DATA_DIR_HELP)
def restore(file: Path, data_dir: Path | None) -> None:
    """Replace the store in the data directory with the backup FILE.

    Refused while a server holds the data directory, and before anything changes when
    FILE is damaged or not a Flotilla store. Components that watched the old store
    re-list when they reconnect."""
    from flotilla.store.base import StoreError
    from flotilla.store.sqlite.backup import restore as load

    data_dir = data_dir or default_data_dir()
    try:
        snap = load(file, data_dir, _progress("restoring"))
    except (StoreError, OSError) as exc:
        raise CliError(f"restore failed: {exc}") from None
    note(f"restored {snap.objects} object(s) at revision {snap.revision} into {data_dir}")
