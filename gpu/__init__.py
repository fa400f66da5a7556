"""The GPU check (check.sh / check.py) and its wheel preparation (prepare.sh, size.py)."""
