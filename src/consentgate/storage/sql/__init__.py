"""What the SQL backends share, written once: the dialects (``dialect``), every query
and row codec (``queries``), the storage methods as jobs of statements (``store``), the
seam a driver implements (``driver``), and each dialect's migrations (``schema_*``).
The drivers themselves (``storage/sqlite.py``, ``storage/postgres.py``) keep only
connections, transactions and pools."""
