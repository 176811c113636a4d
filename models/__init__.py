from . import subscription_close_reason
from . import subscription_plan
from . import subscription_pricing
from . import product_template
from . import subscription
from . import subscription_line
from . import account_move
from . import res_partner
