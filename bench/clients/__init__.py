"""Load-generating client processes; each prints one JSON result line on stdout."""
