"""``python -m fastinit``: the same as the ``fastinit`` command."""

import sys


def run() -> None:
    """Run the ``fastinit`` command: :func:`fastinit.cli.main`, loaded in the same guard.

    A Ctrl-C while the command line's modules load (its first tenth of a second)
    is a one-line message and exit status 130, as one later is, not a traceback.
    """
    try:
        from fastinit.cli import main
    except KeyboardInterrupt:
        print("fastinit: interrupted; nothing written", file=sys.stderr)
        sys.exit(130)
    sys.exit(main())


if __name__ == "__main__":
    run()
