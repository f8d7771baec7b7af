"""Who is acting: the signed-in user as the domain sees it."""

from __future__ import annotations

from dataclasses import dataclass

MEMBER = "member"
COORDINATOR = "coordinator"
SUPPLIER = "supplier"
STAFF = "staff"
ROLES = (MEMBER, COORDINATOR, SUPPLIER, STAFF)


@dataclass(frozen=True)
class Actor:
    user_id: int
    role: str
    display_name: str
    supplier_id: int | None = None
    status: str = "active"

    @property
    def is_staff(self) -> bool:
        return self.role == STAFF and self.status == "active"

    @property
    def may_bid(self) -> bool:
        """Accounts in good standing bid, except staff; a supplier's account never bids
        on its own supplier's lots (checked per lot by the bid script)."""
        return self.role in (MEMBER, COORDINATOR, SUPPLIER) and self.status == "active"
