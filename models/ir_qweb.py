from lxml import etree

from odoo import api, models

from ..tools import CompiledTemplates


class IrQweb(models.AbstractModel):
    _inherit = "ir.qweb"

    def _generate_code_uncached(self, template):
        """In a batch of renderings that asks for it (context ``subscription_qweb_cache``, a
        ``tools.CompiledTemplates``), a template given as an element (a mail template's body held
        as text) is compiled once per source and compile context, as Odoo does for views."""
        memo = self.env.context.get("subscription_qweb_cache")
        if not isinstance(memo, CompiledTemplates) or not isinstance(template, etree._Element):
            return super()._generate_code_uncached(template)
        # Every plain value of the context is in the key (Odoo's compilers and their overrides read
        # the context: lang, restricted mode, preserve_comments...); what is not a plain value
        # (the render's own bookkeeping, the memo) does not change the code.
        key = (etree.tostring(template), frozenset(
            (name, value) for name, value in self.env.context.items()
            if isinstance(value, (str, int, float, bool, type(None))) and not name.startswith("__")),
            frozenset((self.env.context.get("nsmap") or {}).items()))
        if key not in memo:
            memo[key] = super()._generate_code_uncached(template)
        return memo[key]


class MailRenderMixin(models.AbstractModel):
    _inherit = "mail.render.mixin"

    @api.model
    def _has_unsafe_expression_template_qweb(self, template_src, model, fname=None):
        """Odoo checks a body's expressions by compiling it (restricted mode) at each rendering
        call; Odoo's invoice sending renders one invoice per call. In a batch that asks for it
        (context ``subscription_qweb_cache``) the answer is kept per source and model."""
        memo = self.env.context.get("subscription_qweb_cache")
        if not isinstance(memo, CompiledTemplates) or not template_src:
            return super()._has_unsafe_expression_template_qweb(template_src, model, fname=fname)
        key = ("unsafe", str(template_src), model)
        if key not in memo:
            memo[key] = super()._has_unsafe_expression_template_qweb(template_src, model, fname=fname)
        return memo[key]
