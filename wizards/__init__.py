from . import subscription_close_wizard
from . import subscription_enroll_wizard
