"""The Recording: its data type, save/load with a manifest, provenance, the shipped datasets."""
