"""Tables that are data, not logic."""

# Stripe failure codes (``error.decline_code`` when the issuer declined, else ``error.code``)
# after which retrying the same payment method cannot succeed without the customer: the card
# or account is gone, blocked or refused for good, or the bank wants the customer present.
# Every other code (insufficient_funds, processing_error, try_again_later, rate_limit,
# generic_decline, do_not_honor, issuer_not_available, unknown codes ...) is temporary: it is
# retried on the schedule, and becomes final only when the retries are exhausted.
# Sources: https://docs.stripe.com/declines/codes and https://docs.stripe.com/error-codes
STRIPE_PERMANENT_CODES = frozenset({
    # the card is gone or unusable
    "expired_card",
    "lost_card",
    "stolen_card",
    "pickup_card",
    "restricted_card",
    "incorrect_number",
    "invalid_number",
    "invalid_expiry_month",
    "invalid_expiry_year",
    "card_not_supported",
    "currency_not_supported",
    "new_account_information_available",
    # the account or mandate is closed or revoked (bank debits)
    "account_closed",
    "bank_account_restricted",
    "debit_not_authorized",
    "invalid_account",
    "no_account",
    "revocation_of_all_authorizations",
    "revocation_of_authorization",
    "stop_payment_order",
    # the issuer refuses this merchant or this kind of payment for good
    "transaction_not_allowed",
    "not_permitted",
    "security_violation",
    "merchant_blacklist",
    "fraudulent",
    # the payment method was detached or deleted on Stripe
    "resource_missing",
    "payment_method_unactivated",
    # the bank wants the customer to confirm (3-D Secure): off-session retries cannot do it
    "authentication_required",
    "payment_intent_authentication_failure",
})

# Failure code used when the payment method itself cannot be used any more.
CODE_TOKEN_INACTIVE = "token_inactive"

# Codes of subscription._autopay_problem() that the merchant can fix (retried on the
# schedule); the others (inactive method, currency, company ...) need the customer.
AUTOPAY_TEMPORARY_PROBLEMS = frozenset({"provider_disabled"})

# Stripe's tolerance on the age of a signed webhook (seconds), as the SDK's default.
STRIPE_WEBHOOK_TOLERANCE = 300

# Providers whose charge can be sent again with the same transaction when its outcome is
# unknown: Stripe requests carry an idempotency key (valid 24 h), the demo provider moves no money.
RESEND_SAFE_PROVIDERS = ("stripe", "demo")
STRIPE_IDEMPOTENCY_WINDOW_HOURS = 23

# Subscription states, and the groups every rule about them uses (defined here only).
SUBSCRIPTION_STATES = [
    ("draft", "Draft"),
    ("active", "Active"),
    ("past_due", "Past Due"),
    ("suspended", "Suspended"),
    ("paused", "Paused"),
    ("expired", "Expired"),
    ("cancelled", "Cancelled"),
]
# A customer relationship exists (billed or not).
RUNNING_STATES = ("active", "past_due", "suspended", "paused")
# The billing day creates invoices and autopay charges them.
BILLABLE_STATES = ("active", "past_due")
CLOSED_STATES = ("expired", "cancelled")

# The state diagram (drawn in the README): target state -> the states it can be reached from.
# subscription._update_state() is the only way a state changes.
STATE_TRANSITIONS = {
    # started; reactivated by staff or by payment; resumed after a pause; an expired subscription renewed
    "active": ("draft", "past_due", "suspended", "paused", "expired"),
    # a charge failed and will be retried, or a manual payer's invoice is overdue; a suspended
    # subscription whose customer saved a new payment method waits for its charge
    "past_due": ("active", "suspended"),
    # by staff, after a permanent failure, exhausted retries or the grace period
    "suspended": ("active", "past_due"),
    # paused by staff or the customer (where the plan allows): no invoices until resumed
    "paused": ("active",),
    # the term ended without renewal
    "expired": ("active", "past_due", "suspended"),  # a paused term's end moves on resume instead
    # closed by staff or the customer, also before it started
    "cancelled": ("draft", *RUNNING_STATES),
}

# Activity type of a billing failure episode (one open activity per subscription until billed).
ACTIVITY_BILLING_FAILED = "subscription_billing.mail_activity_type_billing_failed"

# Fields of a subscription only these groups read (amounts, lines, payments, failure details);
# every employee reads its standing (state, plan, dates) to tell whether a customer is eligible.
SUBSCRIPTION_DETAIL_GROUPS = (
    "subscription_billing.group_subscription_viewer,subscription_billing.group_subscription_user"
)

# Dates a subscription may take, in years from today either way: beyond, a typo (1900, 9999) would
# make one click create a century of invoices or overflow the period arithmetic.
MAX_YEARS_FROM_TODAY = 10
# Amounts an invoice line can hold exactly: a PostgreSQL numeric is unbounded, but Odoo computes in
# floats (15-16 significant digits), so beyond 10^12 the cents are no longer exact.
MAX_LINE_AMOUNT = 1e12
MAX_QUANTITY = 1e9
# Largest quantity a customer may choose in the portal (more is a conversation with sales).
MAX_PORTAL_QUANTITY = 10000
# Periods "Generate invoice now" creates inside one web request; more are left to the billing
# day's committed batches (after the user confirms), and the billing day itself invoices at most
# this many periods of one subscription per batch.
MAX_PERIODS_PER_REQUEST = 24
