"""The ``flotilla`` command line (click + rich); entry point `flotilla.cli.main.main`.

Commands live one per module (`apply`, `get`, `describe`, `delete`, `events`, `admin`);
the connection and error plumbing is in `session`, printing in `output`, and the per-kind
table columns in `columns`.
"""
