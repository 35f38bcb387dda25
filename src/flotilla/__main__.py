"""``python -m flotilla`` is the ``flotilla`` command (how `flotilla up` starts its parts)."""

from flotilla.cli.main import main

if __name__ == "__main__":
    main()
