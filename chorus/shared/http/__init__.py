"""The HTTP shell of every Chorus process: request limits (``limits``), uvicorn's protocol with head limits
(``protocol``), Prometheus metrics (``metrics``), log format (``logs``), and the error handlers, health routes and
middleware order (``shell``).

It depends on the wire contract only: no numpy, no data layer, no artifact store.
"""
