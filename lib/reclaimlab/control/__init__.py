"""What changes this guest, where probe/ only reads it: its system-wide knobs (`knobs`: drop caches,
compact, reclaim, each behind consent), the one-live-experiment-per-guest lock (`lock`), and scratch
space on its disk, with the clean-up of what killed runs left there (`scratch`)."""
