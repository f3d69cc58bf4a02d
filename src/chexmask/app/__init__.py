"""The web demo behind ``chexmask serve``: upload an X-ray, see and download the result.

``server.create_app`` builds the FastAPI application; ``upload`` checks an upload
(type, bytes, pixels) before it is decoded; ``render`` draws the overlay and packs the
download. FastAPI and uvicorn are optional (``pip install chexmask[app]``) and are
imported only by these modules, never by ``import chexmask``.
"""

__all__: list[str] = []
