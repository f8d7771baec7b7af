"""The worker process: ledger consumer, lot closer, mail sender and unpaid-order canceller.

`python -m workers` runs them all in one asyncio loop; any number of worker
processes may run side by side against the same PostgreSQL and Redis.
"""
