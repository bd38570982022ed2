# Solution: the most one reporting pass can hand over from the top order's free list (mm/page_reporting.c
# budgets each zone x order x migratetype list on its own). `budget` holds what the guest had before the
# run: top_blocks free blocks of the top order in its zone, block_mib MiB each.
import math

calls = math.ceil(budget["top_blocks"] / (32 * 16))   # "a sixteenth of the current list" per call of 32 blocks
budget_mib = (calls + 1) * 32 * budget["block_mib"]    # "plus one additional call"
exercises.check_step_budget(budget_mib, rec_ex)
