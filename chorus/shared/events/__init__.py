"""Events: what users do after the review dump, stored durably (``store``) and folded into answers at once."""
