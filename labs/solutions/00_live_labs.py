# Solution: the labs with at least one experiment LIVE in the table of section 3 (read from the same rows).
live = [int(name[:2]) for name, runs, why in lab.lab_rows(ctx) if "LIVE" in runs]
print("live here:", live or "none")
exercises.check_live_labs(live, lab.lab_rows(ctx))
