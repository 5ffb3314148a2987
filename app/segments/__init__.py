"""Segments: a dynamic list's ``segment_rules`` compiled to one SQL WHERE clause over contacts."""
