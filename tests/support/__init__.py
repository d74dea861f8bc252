"""Helpers for the test suite: engines, images, the service under test."""
