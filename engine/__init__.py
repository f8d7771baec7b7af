"""Jangteo's domain: auctions, group buys, orders and commissions, free of web concerns."""
