"""Presenting a Recording: charts, the live dashboard, numbers and the claims labs speak through."""
