"""Apartment-complex and institution group orders (단지 공동구매, 기관 단체주문).

`rules` holds the checks and arithmetic without I/O, `model` the reads, `service`
the coordinator role, opening and joining (household limits under a row lock),
`closing` the close, sheets, arrival mail, handover and partial refunds,
`campaign_lines` the pledges behind lines on campaign items, and `messages` the
coordinator's mails to participants.
"""
