"""Runnable examples that ship with the consentgate source checkout (not with the wheel)."""
