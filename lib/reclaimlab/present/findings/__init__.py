"""What a run showed, per experiment: functions that take a Recording and return Claims
(`reclaimlab.present.claims`). One module per experiment; labs call them and show the claims."""
