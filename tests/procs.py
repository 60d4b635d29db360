"""Child processes that tests interrupt with Ctrl-C (SIGINT)."""

from __future__ import annotations

import signal


def ctrl_c_stops() -> None:
    """``preexec_fn`` for a child that will get SIGINT: the default disposition, so that Python
    raises ``KeyboardInterrupt`` there. A shell that starts the tests in the background
    (``cmd &`` without job control, as CI scripts may) hands every descendant SIGINT ignored,
    and Python then never installs its handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
