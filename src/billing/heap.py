"""The garbage collector's settings for a long-running process, applied once start-up is done.

Everything built at start-up (modules, routes, schemas, mappers) lives as long as the
process: `gc.freeze()` moves it out of the collector's sight, so the collections that request
garbage triggers do not traverse it again and again (a 1,000-event usage batch cost a third
more CPU without it). And the young generation is collected per 50,000 new container objects
rather than per 700: a batch request or a renewal batch makes tens of thousands of
short-lived dicts that reference counting frees anyway, and a pass per 700 of them cost
about 8 % of a usage batch's CPU. Cycles wait a little longer to be freed; nothing else
changes.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000


def settle() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 20, 20)
