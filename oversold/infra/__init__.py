"""Plumbing shared by the harness's parts: child processes and free ports, an embedded Redis, kept-alive HTTP."""
