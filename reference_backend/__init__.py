"""The reference backend: a flash-sale service over Redis that speaks the oversold contract.

One node is one OS process (``python -m reference_backend --port P --redis-url URL``)
serving a bare ASGI app with uvicorn's server in its own loop (or granian's). The contract is
``openapi.yaml`` beside this file; the Redis keys are in ``docs/internals.md``.
"""
