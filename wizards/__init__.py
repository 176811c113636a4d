from . import subscription_wizard_mixin
from . import subscription_catch_up_wizard
from . import subscription_close_wizard
from . import subscription_enroll_wizard
from . import subscription_reinvoice_wizard
from . import subscription_renew_wizard
from . import subscription_suspend_wizard
from . import subscription_billing_preview
