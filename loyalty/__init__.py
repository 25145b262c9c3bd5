"""A drop-in loyalty engine for Django shops: points, tiers, rewards, campaigns, customer health.

Packages: ``models``, ``services`` (writes), ``selectors`` (reads), ``adapters`` (the shop's
side), ``health`` (the models' maths, no Django), ``admin``, ``api``, and the customer pages
(``views``, ``urls``, ``templatetags``); ``tasks`` holds the Celery tasks. The map of the code
is ``docs/development.md``."""
