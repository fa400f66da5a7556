"""The spool room: the seam between stage processes and the collector (format only)."""
