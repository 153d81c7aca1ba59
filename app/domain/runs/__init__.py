"""Runs of script versions, their typed variables and executed steps."""
