from . import subscription_collection
