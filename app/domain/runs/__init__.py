"""Runs of script versions, their typed variables, executed steps and execution reports."""
