# Solution: how much of our file drop_caches=1 dropped, in MiB. In the table, the row "drop_caches=1",
# column "our file in memory", shows the change (a minus sign: pages left memory); the drop is its size.
from reclaimlab.present.findings import page_cache

w = page_cache.around_drop(rec, 1)                               # the figures around the drop, in KiB
dropped_1 = (w["own_before_kib"] - w["own_after_kib"]) / 1024
exercises.check_dropped(dropped_1, rec, level=1)
