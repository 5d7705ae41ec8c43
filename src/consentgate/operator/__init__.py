"""Tools for the site's operator: figures, exports, access and erasure requests, the
HTML report and the admin dashboard. Used by ``consentgate`` (the cli package) and by the
dashboard endpoints; nothing here runs on a reader's request path.
"""
