from . import subscription_demo
