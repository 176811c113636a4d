import logging
from collections import defaultdict

_logger = logging.getLogger(__name__)


def queue_mails(template, records):
    """Queue ``template`` for those ``records`` whose partner has an e-mail address.

    Only queues (the mail cron sends); never raises: an e-mail problem must not undo a
    billing or payment outcome. The template's body is compiled once for all the records of a
    language (``CompiledTemplates``). Returns the records an e-mail was queued for.
    """
    records = records.filtered(has_email_address)
    if not records:
        return records
    if not template:
        _logger.warning("No e-mail queued for %s %s: its template was deleted", len(records), records._name)
        return records.browse()
    try:
        with records.env.cr.savepoint():
            template.sudo().with_context(subscription_qweb_cache=CompiledTemplates()).send_mail_batch(records.ids)
    except Exception:  # logged; the caller's outcome stands
        _logger.exception("Could not queue e-mail %r for %s %s", template.name, len(records), records._name)
        return records.browse()
    return records


def has_email_address(record):
    """``record``'s customer (its ``partner_id``, whom ``queue_mails`` writes to) has an e-mail address."""
    return bool(record.partner_id.email)


def not_mailed_reason(record):
    """Why ``queue_mails`` queued nothing for ``record`` (sent to its ``partner_id``), said in the
    chatter note that would otherwise say the customer was e-mailed."""
    if not has_email_address(record):
        return record.env._("the customer has no e-mail address")
    return record.env._("it could not be prepared; the server log says why")


class _Own:
    """A container carried in a context key: equal only to itself, and present even empty.
    Odoo reuses an environment whose context compares equal; a container equal to another
    (an empty one to any other empty one) would make the two callers share it."""

    def __eq__(self, other):
        return self is other

    def __ne__(self, other):
        return self is not other

    __hash__ = object.__hash__

    def __bool__(self):
        return True


class CompiledTemplates(_Own, dict):
    """Memo of QWeb code compiled from text during one batch of renderings (context key
    ``subscription_qweb_cache``, read by ``ir.qweb._generate_code_uncached``).

    Odoo compiles a mail template's body, held as text, again for every record it renders
    (``mail.render.mixin._render_template_qweb``): about 10 ms a record, most of an e-mail's cost.
    Within this memo's life the same source, in the same compile context, is compiled once.
    """


class NoteBuffer(_Own, list):
    """Notes collected for ``log_notes`` through a context key."""


def log_notes(notes, author_id=None):
    """Log internal notes on many documents at once, each as ``message_post`` logs a note (subtype
    *Note*, internal, notifying nobody), in one ``mail.message`` create per model, author and round
    (Odoo's ``_message_log_batch``) instead of one ``message_post`` per note.

    A record may get several notes: the first of each record is created in the first round, the
    second in the next..., so every record's notes keep their order. The caller has checked the
    rights: notes are created as superuser.

    :param notes: iterable of ``(record, body)`` pairs (a ``mail.thread`` record, a str or Markup),
        or of ``(record, body, author_id)`` triples to give a note its author (default: the
        current user's partner, as ``message_post``)
    :param author_id: ``res.partner`` id of the author of the pairs' notes (default as above)
    :return: None
    """
    rounds = []  # per round: {(model, author id): {record id: body}}
    seen = defaultdict(int)
    env = None
    for note in notes:
        record, body = note[0], note[1]
        author = note[2] if len(note) > 2 else author_id
        env = record.env
        key = (record._name, record.id)
        if seen[key] == len(rounds):
            rounds.append(defaultdict(dict))
        rounds[seen[key]][record._name, author][record.id] = body
        seen[key] += 1
    for round_ in rounds:
        for (model, author), bodies in round_.items():
            env[model].browse(list(bodies))._message_log_batch(bodies, author_id=author)
