"""A codec server, so the Temporal web UI can show encrypted payloads in clear text.

    VOLUME_MANAGE_PAYLOAD_KEY=... volume-manage-codec-server --port 8888 \
        --ui-origin http://localhost:8233

(or `python -m volume_manage.operations.codec_server`, with the same options).

Then point the UI at it: `temporal server start-dev --ui-codec-endpoint
http://127.0.0.1:8888`, or the UI's "Data Encoder" setting (per browser). It speaks
Temporal's remote codec protocol: POST /decode and POST /encode with `{"payloads": [...]}`
in protobuf JSON. Whoever reaches it can decrypt, so it binds to 127.0.0.1 by default and
answers cross-origin requests only from the UI.
"""

from __future__ import annotations

from typing import Any

import typer
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from volume_manage.shared.codec import EncryptionCodec, key_from_env

DEFAULT_UI_ORIGIN = "http://localhost:8233"


def create_app(codec: EncryptionCodec, ui_origins: list[str]) -> FastAPI:
    app = FastAPI(title="volume-manage codec server", docs_url=None, redoc_url=None)
    app.add_middleware(CORSMiddleware, allow_origins=ui_origins, allow_credentials=True,
                       allow_methods=["POST", "OPTIONS"],
                       allow_headers=["Content-Type", "X-Namespace", "Authorization"])

    async def payloads_of(request: Request) -> Payloads:
        try:
            return json_format.ParseDict(await request.json(), Payloads())
        except (ValueError, json_format.ParseError) as err:
            raise HTTPException(400, f"payloads: expected {{\"payloads\": [...]}}: {err}"
                                ) from None

    @app.post("/decode")
    async def decode(request: Request) -> dict[str, Any]:
        payloads = await payloads_of(request)
        try:
            decoded = await codec.decode(payloads.payloads)
        except Exception:  # cryptography's InvalidTag: another key, or tampered data
            raise HTTPException(400, "payloads: cannot be decrypted with this key") from None
        return json_format.MessageToDict(Payloads(payloads=decoded))

    @app.post("/encode")
    async def encode(request: Request) -> dict[str, Any]:
        payloads = await payloads_of(request)
        encoded = await codec.encode(payloads.payloads)
        return json_format.MessageToDict(Payloads(payloads=encoded))

    return app


def serve(
    host: str = typer.Option("127.0.0.1", help="address to bind (keep it private)"),
    port: int = typer.Option(8888, help="port to listen on"),
    ui_origin: list[str] = typer.Option([DEFAULT_UI_ORIGIN], help="the web UI's origin"),
) -> None:
    """Serve /decode and /encode with the key in VOLUME_MANAGE_PAYLOAD_KEY."""
    try:
        key = key_from_env()
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    if key is None:
        raise typer.BadParameter("set VOLUME_MANAGE_PAYLOAD_KEY to the workers' key")
    uvicorn.run(create_app(EncryptionCodec(key), ui_origin), host=host, port=port,
                log_level="warning")


def main() -> None:
    """`python -m volume_manage.operations.codec_server` and `volume-manage-codec-server`."""
    typer.run(serve)


if __name__ == "__main__":
    main()
