"""Rating service: bias-only and latent factor models (``core``), their training and evaluation (``train``)."""
