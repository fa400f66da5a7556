"""The insights room: reads the store (metrics, drift, notes, report, lineage)."""
