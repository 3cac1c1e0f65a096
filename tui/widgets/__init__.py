"""Widgets that own their rendering (and their messages)."""
