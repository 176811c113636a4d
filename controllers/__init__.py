from . import stripe
from . import portal
