from . import subscription_collection
from . import subscription_cohort
