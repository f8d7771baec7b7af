"""Group buys (공동구매): tiered prices by committed units."""
