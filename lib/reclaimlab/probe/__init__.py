"""This machine as a guest: pure /proc and /sys parsers, sources, fast reads, guest facts, host views,
consent, knobs, the guest lock and scratch space. Imports nothing above it."""
