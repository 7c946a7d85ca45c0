"""The shadow candidate's inference thread runs at the lowest CPU priority, and only it."""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from pipeline.shadow.scorer import BACKGROUND_NICENESS, lower_thread_priority


def _niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_only_the_shadow_thread_is_reniced() -> None:
    before = _niceness()
    with ThreadPoolExecutor(max_workers=1, initializer=lower_thread_priority) as pool:
        shadow = pool.submit(_niceness).result()
    expected = BACKGROUND_NICENESS if sys.platform == "linux" else before
    assert shadow == expected
    assert _niceness() == before  # the calling (live) thread keeps its priority
