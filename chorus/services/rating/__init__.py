"""Rating service: predicted ratings and top-N from the mean, bias and latent factor models.

Served (what ``app.py`` imports): ``models/`` (the model interface, the models and their registry),
``persistence`` (the artifact component), ``service`` (the state of one served version), ``api``, ``app``,
``settings``. Offline: ``config`` (hyperparameters), ``objective`` (the objective and its gradient), ``fitting``
(what trainers share), ``baseline`` (exact mean and bias fits), ``als``, ``lbfgs``, ``accuracy`` (error measures)
and ``train`` (selection on validation, k-fold evaluation, the ``chorus train`` entry point).
"""
