"""Error codes of bidding, lot management, pledging and campaigns, registered with `web.errors`.

The codes are the ones the engine returns (`BidOutcome.code`, `DomainError.code`),
so API clients see the engine's vocabulary. Messages are English msgids; the
Korean text is in the ko catalog.
"""

from __future__ import annotations

from web.errors import register_error
from web.i18n import N_

BID_ERRORS: tuple[tuple[str, int, str], ...] = (
    ("bid_too_low", 409, N_("The minimum bid is {min_next_won:,} won. Enter at least that amount.")),
    ("lot_ended", 409, N_("This auction has ended; bids are no longer accepted.")),
    ("lot_not_started", 409, N_("This auction has not started yet. Please bid after it opens.")),
    ("own_lot", 403, N_("You cannot bid on a lot of your own business.")),
    ("not_allowed_to_bid", 403, N_("This account may not bid. Staff accounts and suspended accounts cannot bid.")),
    ("invalid_amount", 400, N_("Enter the amount in whole won, digits only (for example 12500).")),
    ("invalid_client_id", 400, N_("The bid form is invalid. Reload the page and try again.")),
    ("client_id_reused", 409, N_("This bid form was already used for another amount. Reload the page and bid again.")),
    ("buy_now_unavailable", 409, N_("Buy now is not available for this lot; it ends with the first bid.")),
    ("lot_cancelled", 409, N_("This auction was cancelled.")),
    ("lot_held", 409, N_("This auction is held for staff review; bidding is paused.")),
    ("lot_not_found", 404, N_("No such auction lot.")),
    ("max_not_raised", 409, N_("You already lead with this maximum or a higher one. Enter a higher maximum to raise it.")),
    ("not_confirmed", 503, N_("Your bid was not confirmed. Please send the same bid again.")),
    ("bid_voided", 409, N_("Staff voided this bid. Reload the page to see the current price before you bid again.")),
    ("lot_rebuilding", 503, N_("This auction is being restored after a server restart. Please send the same bid again in a few seconds.")),
)

LOT_ERRORS: tuple[tuple[str, int, str], ...] = (
    ("invalid_title", 422, N_("Enter a title of 1 to 120 characters.")),
    ("invalid_quantity", 422, N_("Enter a quantity from 1 to 100,000.")),
    ("invalid_datetime", 422, N_("Enter the date and time as 2026-12-04T19:30 (Korea time) or ISO 8601 with an offset.")),
    ("invalid_field", 422, N_("The field {field} is missing or invalid.")),
    ("reserve_below_start", 422, N_("The reserve price must be at least the start price.")),
    ("buy_now_below_start", 422, N_("The buy-now price must be at least the start price.")),
    ("buy_now_below_reserve", 422, N_("The buy-now price must be at least the reserve price.")),
    ("end_before_start", 422, N_("The end must be after the start.")),
    ("end_in_past", 422, N_("The end must be in the future.")),
    ("duration_too_long", 422, N_("An auction runs at most 30 days.")),
    ("hard_cap_before_end", 422, N_("The latest end (hard cap) must not be before the end.")),
    ("invalid_soft_close", 422, N_("Soft-close window and extension must be 0 to 3600 seconds.")),
    ("invalid_increments", 422, N_("The increment table is invalid: it must start at 0 won, ascend and have positive steps.")),
    ("product_not_found", 404, N_("No such product.")),
    ("supplier_not_approved", 409, N_("The supplier is not approved yet.")),
)

STAFF_ERRORS: tuple[tuple[str, int, str], ...] = (
    ("lot_not_open", 409, N_("This lot is no longer scheduled or open, so it cannot be changed.")),
    ("invalid_end", 422, N_("Enter the new end as a date and time.")),
    ("end_not_later", 409, N_("The new end must be later than now and than the current end.")),
    ("beyond_hard_cap", 409, N_("The new end is past the lot's latest allowed end (hard cap).")),
    ("ledger_behind", 503, N_("The bid record is still being written. Please try again in a few seconds.")),
    ("lot_busy", 409, N_("Bids kept arriving during the void. Please try again.")),
    ("bid_not_found", 404, N_("No such bid on this lot.")),
    ("bid_already_voided", 409, N_("This bid is already void.")),
    ("lot_not_sold", 409, N_("This lot was not sold, so there is nothing to offer again.")),
    ("winner_order_active", 409, N_("The winner's order is still active and not overdue.")),
    ("no_runner_up", 409, N_("This lot had no other bidder.")),
    ("runner_up_below_reserve", 409, N_("The runner-up's maximum is below the reserve price.")),
    ("offer_exists", 409, N_("This lot was already offered to its runner-up.")),
    ("order_not_found", 404, N_("No such order.")),
    ("order_not_awaiting_payment", 409, N_("This order is not awaiting payment.")),
    ("deposit_short", 409, N_("The deposit of {deposit_won:,} won is less than the {due_won:,} won still due on this order. Confirm it once the rest has arrived.")),
    ("payment_not_found", 404, N_("No such group-buy payment.")),
    ("payment_not_awaiting_deposit", 409, N_("This payment's deposit was already confirmed, or the payment was refunded or settled. Nothing was changed.")),
)

PLEDGE_ERRORS: tuple[tuple[str, int, str], ...] = (
    ("invalid_units", 400, N_("Enter the number of units as digits only (for example 3). 0 cancels your pledge.")),
    ("over_stock", 409, N_("Only {units_left} units are left, so your pledge was not accepted. You can pledge at most {units_allowed} units in total.")),
    ("sold_out", 409, N_("This group buy is sold out. You can still lower or cancel your pledge.")),
    ("over_member_limit", 409, N_("Each member may pledge at most {per_member_limit} units, so your pledge was not accepted. You can pledge at most {units_allowed} units in total.")),
    ("pledge_unchanged", 409, N_("You have already pledged {member_units} units. Enter a different total to change it.")),
    ("no_pledge", 409, N_("You have no pledge in this group buy, so there is nothing to cancel.")),
    ("campaign_closed", 409, N_("This group buy has closed; pledges can no longer be made or changed.")),
    ("campaign_not_started", 409, N_("This group buy has not started yet. Please pledge after it opens.")),
    ("campaign_cancelled", 409, N_("This group buy was cancelled.")),
    ("campaign_held", 409, N_("This group buy is held for staff review; pledges are paused.")),
    ("own_goods", 403, N_("You cannot pledge to a group buy of your own business.")),
    ("not_allowed_to_pledge", 403, N_("This account may not pledge. Staff accounts and suspended accounts cannot pledge.")),
    ("campaign_not_found", 404, N_("No such group buy.")),
    ("pledge_not_confirmed", 503, N_("Your pledge was not confirmed. Please send the same pledge again.")),
    ("campaign_rebuilding", 503, N_("This group buy is being restored after a server restart. Please send the same pledge again in a few seconds.")),
    ("pledge_changed", 409, N_("Your pledge changed to {member_units} units while this request was sent, so it was not applied. Check your total and send it again.")),
)

CAMPAIGN_ERRORS: tuple[tuple[str, int, str], ...] = (
    ("invalid_unit_count", 422, N_("Enter a whole number of units from 1 to 100,000, digits only.")),
    ("invalid_unit_label", 422, N_("Enter a unit label of at most 40 characters, for example 1박스(5kg).")),
    ("invalid_member_limit", 422, N_("Enter the per-member limit as a whole number from 1 to 100,000.")),
    ("min_above_cap", 422, N_("The minimum total must not exceed the stock cap.")),
    ("invalid_min_buyers", 422, N_("Enter the minimum number of buyers as a whole number from 1 to 100,000, or leave it empty.")),
    ("min_buyers_above_cap", 422, N_("The minimum number of buyers must not exceed the stock cap, because each buyer pledges at least one unit.")),
    ("deadline_before_start", 422, N_("The deadline must be after the start.")),
    ("deadline_in_past", 422, N_("The deadline must be in the future.")),
    ("campaign_too_long", 422, N_("A group buy runs at most 90 days.")),
    ("invalid_fulfilment", 422, N_("Choose delivery or pickup.")),
    ("invalid_fulfilment_terms", 422, N_("Delivery or pickup terms must be at most 2,000 characters.")),
    ("invalid_payment_timing", 422, N_("Choose when members pay: after success or up front.")),
    ("invalid_payment_due", 422, N_("The payment time limit must be from 1 minute to 30 days.")),
    ("invalid_hold", 422, N_("The deposit hold time must be from 1 minute to 7 days.")),
    ("invalid_tiers", 422, N_("Enter the tiers as units:price pairs, for example 10:9000, 50:8000.")),
    ("tiers_required", 422, N_("Enter at least one price tier.")),
    ("invalid_tier_units", 422, N_("Tier thresholds must be 1 to 100,000 units.")),
    ("invalid_tier_price", 422, N_("Tier prices must be 1 to 100,000,000 won.")),
    ("tier_price_above_list", 422, N_("A tier price must not be above the list price.")),
    ("tier_above_cap", 422, N_("A tier threshold must not be above the stock cap.")),
    ("tiers_not_ascending", 422, N_("Tier thresholds must rise from one tier to the next.")),
    ("tier_prices_not_descending", 422, N_("Tier prices must fall from one tier to the next.")),
    ("product_not_approved", 409, N_("The product is not approved for sale yet.")),
    ("campaign_not_open", 409, N_("This group buy is closing, closed or held for review, so it can no longer be cancelled.")),
    ("invalid_cancel_reason", 422, N_("Enter the reason for cancelling, 1 to {max_chars} characters.")),
)

for _code, _status, _msgid in (*BID_ERRORS, *LOT_ERRORS, *STAFF_ERRORS, *PLEDGE_ERRORS, *CAMPAIGN_ERRORS):
    register_error(_code, _status, _msgid)
