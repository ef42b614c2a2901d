"""The gateway: one public HTTP API and web page over the similarity and rating services, with a cache."""
