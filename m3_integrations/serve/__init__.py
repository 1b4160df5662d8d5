"""The encoder as an HTTP service (``m3 serve``): all three BGE-M3 outputs from one call.

Needs the ``serve`` extra (FastAPI + uvicorn)::

    from m3_integrations import M3Encoder
    from m3_integrations.serve import M3Server, ServeSettings, create_app

    app = create_app(M3Encoder("BAAI/bge-m3"), ServeSettings(api_key="secret"))
    M3Server(app, host="127.0.0.1", port=8080).run()

Clients: ``m3_integrations.remote.RemoteEncoder`` (the encoder API over HTTP), any OpenAI client
(``/v1/embeddings``), text-embeddings-inference clients (``/embed``, ``/embed_sparse``).
"""

from .app import ServeSettings, ServiceError, begin_drain, create_app
from .batcher import DynamicBatcher, ServiceClosedError
from .server import M3Server, is_loopback

__all__ = ["DynamicBatcher", "M3Server", "ServeSettings", "ServiceClosedError", "ServiceError", "begin_drain",
           "create_app", "is_loopback"]
