"""The loyalty REST API (Django REST framework): customer endpoints and staff endpoints.

Include ``loyalty.api.urls`` under any prefix (the demo uses ``/api/loyalty/``). Views are
thin: reads go through :mod:`loyalty.selectors` and :mod:`loyalty.selectors.kpis`, writes through
:mod:`loyalty.services`. Errors are JSON with a stable ``code`` (:mod:`.exceptions`).
See ``docs/api.md``.
"""
