"""The Valley Courier: a FastAPI news site with its own accounts, wrapped by consentgate."""
