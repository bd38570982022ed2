# Solution: free memory in blocks of at least a given order in the "fragmented" snapshot `snap`
# (one row per order, summed over zones). A block of order k is 2**k pages of 4 KiB.
page_kib = 4
reportable_9 = sum(r.free_blocks * r.pages_per_block * page_kib for r in snap.itertuples() if r.order >= 9) / 1024
reportable_5 = sum(r.free_blocks * r.pages_per_block * page_kib for r in snap.itertuples() if r.order >= 5) / 1024
exercises.check_reportable(reportable_9, rec_ex, order=9, label="fragmented")
exercises.check_reportable(reportable_5, rec_ex, order=5, label="fragmented")
