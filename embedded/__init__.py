"""Embedded PostgreSQL, Redis and SMTP sink for machines that set no service URLs.

`python -m embedded run` starts whatever `DATABASE_URL`, `REDIS_URL` and `SMTP_URL`
leave unset, under the settings' data directory, and then runs the `Procfile`.
The servers outlive the launcher, so their data and ports survive its restarts.
"""
