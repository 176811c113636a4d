import logging

_logger = logging.getLogger(__name__)


def queue_mails(template, records):
    """Queue ``template`` for those ``records`` whose partner has an e-mail address.

    Only queues (the mail cron sends); never raises: an e-mail problem must not undo a
    billing or payment outcome. Returns the records an e-mail was queued for.
    """
    records = records.filtered(lambda r: r.partner_id.email)
    if not template or not records:
        return records.browse()
    try:
        with records.env.cr.savepoint():
            template.sudo().send_mail_batch(records.ids)
    except Exception:  # logged; the caller's outcome stands
        _logger.exception("Could not queue e-mail %r for %s %s", template.name, len(records), records._name)
        return records.browse()
    return records
