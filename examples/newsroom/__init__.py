"""The Harbour Ledger: an invented local news site used to demonstrate consentgate.

Every article, person, business and place in it is fictional. ``create_app`` in
:mod:`examples.newsroom.app` builds the site; ``consentgate demo`` runs it.
"""
