"""charnn serve: the models behind an HTTP API that OpenAI's completions clients speak, stepping
every live stream together (continuous batching), with a page to try them.

engine.py owns the stepping thread, protocol.py the request and response shapes, app.py the
routes (FastAPI), server.py the socket and uvicorn; page.html is the page. All of it stands on
the public API: charnn.load, Model.generation and Model.batch.
"""
