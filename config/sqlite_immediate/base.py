"""SQLite that starts transactions with BEGIN IMMEDIATE, for Django < 5.1.

Django 5.1+ does this with ``OPTIONS["transaction_mode"] = "IMMEDIATE"`` (config/settings.py);
Django 4.2 has no such option, so settings name this backend instead. Same two overrides as 5.1.
"""

from django.db.backends.sqlite3 import base


class DatabaseWrapper(base.DatabaseWrapper):
    def _set_autocommit(self, autocommit):
        with self.wrap_database_errors:
            self.connection.isolation_level = None if autocommit else "IMMEDIATE"

    def _start_transaction_under_autocommit(self):
        self.cursor().execute("BEGIN IMMEDIATE")
