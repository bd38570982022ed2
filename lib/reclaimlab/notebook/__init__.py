"""Notebook helpers: lab setup and banners, questions, exercises, slides."""
