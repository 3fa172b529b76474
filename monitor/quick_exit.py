"""Exit without the interpreter's last garbage collection.

At exit Python clears every module, then collects the cycles left: a walk over every object that pandas,
matplotlib and an analysis left alive, 0.3-0.8 s after a big report's work is done, in each of its processes.
Objects frozen by gc.freeze() are left out of that walk, and the operating system takes their memory back at
once. Nothing of ours needs a finalizer in a cycle to run at exit: files are closed by `with` blocks and
transactions committed before it.
"""

from __future__ import annotations

import atexit
import gc


def skip_last_collection() -> None:
    """From the exit handlers on, the collector leaves every object alone (see the module's docstring)."""
    atexit.register(gc.freeze)  # registered first, so it runs after the exit handlers registered later
