"""Transactional mail texts in the recipient's locale: `templates` (auctions, orders), `groupbuy`, and `i18n`.

Callers look up the recipient's locale with `i18n.recipient_locale` and pass it to
the builder, then put the rendered subject and body into the outbox.
"""
