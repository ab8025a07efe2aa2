"""``python -m fastinit``: the same as the ``fastinit`` command."""

import signal
import sys


def run() -> None:
    """Run the ``fastinit`` command: :func:`fastinit.cli.main`, loaded in the same guard.

    A Ctrl-C while the command line's modules load (its first tenth of a second)
    is a one-line message and exit status 130, as one later is, not a traceback.
    Once the command has returned, its status is decided: a Ctrl-C or SIGTERM
    while Python shuts down is ignored, not a death by signal after a run that
    wrote its files and said so.
    """
    try:
        from fastinit.cli import main
    except KeyboardInterrupt:
        print("fastinit: interrupted; nothing written", file=sys.stderr)
        sys.exit(130)
    status = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(status)


if __name__ == "__main__":
    run()
