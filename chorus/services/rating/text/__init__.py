"""Review text in the rating service: features (:mod:`.features`), the served review scorer (:mod:`.scorer`) and,
offline, the text models and their evaluation (:mod:`.fit`) and the text-aware rating model's trainer
(:mod:`.aware`).

The service imports only :mod:`.features` and :mod:`.scorer` (numpy and the standard library); scikit-learn, the
fitting and the evaluation stay in the offline modules that ``chorus train`` and ``chorus evaluate`` run.
"""
