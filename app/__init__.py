"""Scriptworks: a multi-tenant backend for authoring and running visual scripts."""
