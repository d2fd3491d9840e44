"""Progress bars for long work: on stderr, quiet when not attached to a terminal unless asked."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def progress(*, total: int, desc: str, unit: str = "it", initial: int = 0) -> tqdm:
    """A tqdm bar with rate and ETA; ``GVR_PROGRESS=1`` forces it on, ``0`` off."""
    forced = os.environ.get("GVR_PROGRESS")
    disable = (forced == "0") or (forced != "1" and not sys.stderr.isatty())
    return tqdm(total=total, desc=desc, unit=unit, initial=initial, disable=disable, dynamic_ncols=True,
                mininterval=1.0, smoothing=0.1)
