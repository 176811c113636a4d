from . import test_utils
from . import test_billing
from . import test_subscription
from . import test_security
from . import test_sale_order
from . import test_invoice_link
from . import test_autopay
from . import test_stripe
