"""Reference servers that Jangteo's figures are divided by (no Jangteo code in them)."""
