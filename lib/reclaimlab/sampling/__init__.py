"""The sampler: a thread that reads the guest's memory at a steady rate into a Recording."""
