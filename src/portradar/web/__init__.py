"""The web face of portradar: the HTTP API under ``/api/v1`` and the offline dashboard.

``portradar serve`` runs :func:`portradar.web.app.create_app` under uvicorn.
"""
