"""Containers: what to run (spec), running it in a VM (run), and its record."""
