"""Federated sign-in with OpenID Connect (docs/access.md, "Federated sign-in").

``provider`` talks to an OpenID Provider (discovery, JWKS, ID token checks), ``claims``
turns claims into what Rechenwerk grants, ``service`` applies that to a user (the one
path that creates federated users), ``flows`` runs the browser and the device flows,
``router`` is the REST face of the device flow.
"""
