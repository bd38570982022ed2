# Solution: the most one reporting pass can hand over (mm/page_reporting.c). `budget` holds what the
# guest had before the run: top_blocks free blocks of the top order, block_mib MiB each.
import math

calls = math.ceil(budget["top_blocks"] / (32 * 16))   # "a sixteenth of the current list" per call of 32 blocks
budget_mib = (calls + 1) * 32 * budget["block_mib"]    # "plus one additional call"
exercises.check_step_budget(budget_mib, rec_on)
