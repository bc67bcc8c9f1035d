"""Onboarding web pages and the admin JSON API."""
