from . import stripe
