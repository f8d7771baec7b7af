"""One module per measured scenario; each returns a dict that goes into latest.json."""
