"""Tests of the controller dashboard (a real browser against a real stack)."""
