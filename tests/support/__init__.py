"""Helpers the tests share: an in-process stack, worker processes, histories, a TCP proxy."""
