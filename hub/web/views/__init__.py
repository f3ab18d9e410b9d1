"""What the pages show, computed without UI or I/O (unit-tested in tests/web/): numbers and
units, times, sparklines, the CSV export."""
