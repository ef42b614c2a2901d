"""The wire contract every process agrees on: plain names and bounds (``names``), the error types and their bodies
(``errors``), the query parameters and documented errors of each route (``params``), the response models
(``schemas``), the review scorer's request and answer (``reviews``) and the model kinds (``kinds``).

It imports neither numpy nor the data layer nor the artifact store, so the gateway can serve the contract without
them (``[tool.importlinter]`` in ``pyproject.toml`` checks that).
"""
