"""The HTTP API (FastAPI): ``create_app`` wires everything."""
