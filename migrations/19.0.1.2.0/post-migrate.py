"""The revenue event log gains its main product, country and close reason: existing rows are filled
from their subscriptions in three set-based statements."""


def migrate(cr, version):
    if not version:
        return
    cr.execute("""
        UPDATE subscription_mrr_log l SET product_id = m.product_id
          FROM (SELECT DISTINCT ON (subscription_id) subscription_id, product_id
                  FROM subscription_line
                 ORDER BY subscription_id, price_subtotal DESC NULLS LAST, sequence, id) m
         WHERE m.subscription_id = l.subscription_id AND l.product_id IS NULL
    """)
    cr.execute("""
        UPDATE subscription_mrr_log l SET country_id = p.country_id
          FROM res_partner p WHERE p.id = l.partner_id AND l.country_id IS NULL
    """)
    cr.execute("""
        UPDATE subscription_mrr_log l SET close_reason_id = s.close_reason_id
          FROM subscription_subscription s
         WHERE s.id = l.subscription_id AND l.event_type = 'churn' AND l.close_reason_id IS NULL
    """)
