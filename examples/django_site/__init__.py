"""The Northfield Post: a Django (ASGI) news site with Django's own accounts, wrapped by
consentgate."""
